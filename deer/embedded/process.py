"""What both embedded servers share: ports, pid files, waiting for readiness, stopping."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import psutil

READY_TIMEOUT: Final = 60.0
STOP_TIMEOUT: Final = 30.0
POLL_INTERVAL: Final = 0.05


class EngineError(Exception):
    """An embedded server cannot start or be reached; the message tells a person what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int, variable: str, host: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise EngineError(
                f"port {port} on {host} is taken by another program: "
                f"stop it or set {variable} to a free port"
            ) from None


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def live_process(pid: int, folder: str) -> psutil.Process | None:
    """The process `pid` if it is alive and is a server of `folder` (its command line names
    the folder, or it runs inside it: Valkey rewrites its command line)."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        if any(folder in part for part in process.cmdline()) or process.cwd() == folder:
            return process
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return None


def wait_until(
    ready: Callable[[], bool],
    child: subprocess.Popen[bytes] | None,
    what: str,
    log: Path,
    timeout: float = READY_TIMEOUT,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.poll() is not None:
            raise EngineError(f"{what} exited at start (code {child.returncode}):\n{tail(log)}")
        if ready():
            return
        time.sleep(POLL_INTERVAL)
    raise EngineError(f"{what} did not become ready within {timeout:.0f} s:\n{tail(log)}")


def stop_process(
    process: psutil.Process,
    child: subprocess.Popen[bytes] | None,
    stop_signal: signal.Signals,
    timeout: float = STOP_TIMEOUT,
) -> None:
    """Ask politely, wait, then kill; reap our own child so no zombie stays behind."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process.send_signal(stop_signal)
        try:
            process.wait(timeout)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(5)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(5)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def spawn(
    command: list[str], log: Path, cwd: Path, user: str | None = None
) -> subprocess.Popen[bytes]:
    """Start a server in its own session so a terminal's Ctrl-C reaches only us; we stop it."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            user=user,
            start_new_session=True,
            env={**os.environ, "LC_ALL": "C"},
        )


class ChildServer:
    """What an embedded server keeps: its folder, port, process, and how it is stopped."""

    stop_signal: signal.Signals = signal.SIGTERM

    def __init__(self, folder: Path, port: int | None, log: Path) -> None:
        self.folder = folder.resolve()
        self.wanted_port = port
        self.log = log
        self.port: int | None = None
        self._process: psutil.Process | None = None
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> tuple[psutil.Process, int] | None:
        """The live server of this folder and its port, from the files it keeps there."""
        raise NotImplementedError

    def attach(self) -> bool:
        """Use the server already running for this folder, if there is one."""
        found = self.running()
        if found is None:
            return False
        self._process, self.port = found
        return True

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, self._child, self.stop_signal)
        self._process = self._child = None
