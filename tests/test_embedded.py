"""The newcomer path: `python run.py` with no configuration starts real embedded engines,
stops them with itself, and finds its data again on the next start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from config.settings import load_settings
from deer.embedded import EngineError, Engines, postgres

RUN = Path(__file__).resolve().parent.parent / "run.py"
START_DEADLINE = 120.0  # generous: this checks behaviour; bench/http.py measures speed
STOP_DEADLINE = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


class Service:
    """`python run.py ...` in a folder of its own, with an otherwise empty environment."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        # The only configuration: a free HTTP port, in the .env file deer reads.
        (folder / ".env").write_text(f"DEER_PORT={port}\n", encoding="utf-8")
        self.started: list[subprocess.Popen[str]] = []

    def start(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, str(RUN), *args],
            cwd=self.folder,
            env={},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.started.append(process)
        return process

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(RUN), *args],
            cwd=self.folder,
            env={},
            capture_output=True,
            text=True,
            timeout=STOP_DEADLINE,
        )

    def wait_ready(self, process: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"run.py exited with {process.returncode}:\n{output}")
            if get(f"http://127.0.0.1:{self.port}/readyz") == 200:
                return
            time.sleep(0.1)
        process.kill()
        pytest.fail("run.py did not become ready")

    def stop(self, process: subprocess.Popen[str], how: signal.Signals = signal.SIGTERM) -> str:
        process.send_signal(how)
        output, _ = process.communicate(timeout=STOP_DEADLINE)
        return output

    def engine_processes(self) -> list[psutil.Process]:
        """Every live process of this folder's engines (servers and their workers)."""
        marker = str((self.folder / "var").resolve())
        found = []
        for process in psutil.process_iter(["cmdline", "status", "cwd"]):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            cmdline = process.info["cmdline"] or []
            cwd = process.info["cwd"] or ""
            if cwd.startswith(marker) or any(marker in part for part in cmdline):
                found.append(process)
        return found

    def server_pids(self) -> dict[str, int]:
        """The main pid of each engine, from the files they keep in the data folder."""
        data = self.folder / "var"
        postmaster = (data / "pg" / "postmaster.pid").read_text().split()[0]
        valkey = (data / "valkey" / "valkey.pid").read_text().strip()
        return {"postgres": int(postmaster), "valkey": int(valkey)}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    svc = Service(tmp_path, free_port())
    yield svc
    for process in svc.started:  # a failed test may leave its service running
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=STOP_DEADLINE)
    for leftover in svc.engine_processes():  # never leave servers behind, even on failure
        leftover.kill()


def test_newcomer_path_starts_stops_and_reuses_data(service: Service) -> None:
    process = service.start()
    service.wait_ready(process)
    pids = service.server_pids()
    assert psutil.Process(pids["postgres"]).name() == "postgres"
    assert psutil.Process(pids["valkey"]).name().startswith("valkey")
    assert {p.ppid() for p in map(psutil.Process, pids.values())} == {process.pid}

    # A second command beside the running service uses its engines and leaves them running.
    created = service.run(
        "create-admin",
        "--username",
        "boss",
        "--name",
        "老板",
        "--mobile",
        "13800000000",
        "--password",
        "correct-horse-1",
    )
    assert created.returncode == 0, created.stdout + created.stderr
    seeded = service.run("seed-demo", "--quiet")
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    # 13 demo staff beside the admin created above
    assert seeded.stdout.strip() == (
        "demo data ready: 6 departments, 14 staff, 30 categories, 120 products, 200 members"
    )
    assert service.server_pids() == pids
    assert all(psutil.pid_exists(pid) for pid in pids.values())

    output = service.stop(process)
    assert process.returncode == 0, output
    assert service.engine_processes() == []
    assert not any(psutil.pid_exists(pid) for pid in pids.values())

    # The data is still there on the next start.
    again = service.start()
    service.wait_ready(again)
    duplicate = service.run(
        "create-admin", "--username", "boss", "--name", "老板", "--password", "correct-horse-1"
    )
    assert duplicate.returncode == 1
    assert "a user named 'boss' already exists" in duplicate.stderr
    service.stop(again)
    assert service.engine_processes() == []


def test_engines_left_by_a_killed_process_are_adopted(service: Service) -> None:
    process = service.start()
    service.wait_ready(process)
    orphans = service.server_pids()
    service.stop(process, signal.SIGKILL)
    assert all(psutil.pid_exists(pid) for pid in orphans.values())  # still running

    again = service.start()
    service.wait_ready(again)
    assert service.server_pids() == orphans  # reused, not restarted
    service.stop(again)
    assert service.engine_processes() == []


def test_a_second_service_on_the_same_folder_is_refused(service: Service) -> None:
    process = service.start()
    service.wait_ready(process)
    second = service.run("serve")
    assert second.returncode == 1
    assert f"is in use by another deer process (pid {process.pid})" in second.stderr
    service.stop(process)


def test_a_taken_http_port_is_reported(service: Service) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", service.port))
        blocker.listen()
        result = service.run("serve")
    assert result.returncode == 1
    assert f"port {service.port} on 127.0.0.1 is taken" in result.stderr
    assert "DEER_PORT" in result.stderr
    assert service.engine_processes() == []


def test_a_taken_engine_port_is_reported(tmp_path: Path) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        settings = load_settings(
            _env_file=None, data_dir=tmp_path, embedded_redis_port=port, redis_url=None
        )
        engines = Engines(settings)
        with pytest.raises(EngineError) as raised:
            engines.start(exclusive=True)
    assert str(raised.value) == (
        f"port {port} on 127.0.0.1 is taken by another program: "
        "stop it or set DEER_EMBEDDED_REDIS_PORT to a free port"
    )
    assert engines.pids() == []  # the PostgreSQL it had started is stopped again


def test_check_prints_masked_configuration_and_pings(service: Service) -> None:
    result = service.run("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DEER_DATABASE_URL" in result.stdout
    assert "ok   postgres   PostgreSQL 18" in result.stdout
    assert "ok   redis      Valkey" in result.stdout
    assert service.engine_processes() == []
    assert os.path.exists(service.folder / "var" / "pg" / "PG_VERSION")


@pytest.mark.skipif(os.geteuid() != 0, reason="PostgreSQL needs a user of its own only under root")
def test_the_postgres_user_is_created_with_no_path_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under root PostgreSQL runs as a system user of its own, made on first start. A service
    started with a bare environment has no PATH: `useradd` (in /usr/sbin) must still be found."""
    name = f"deer_t{uuid.uuid4().hex[:8]}"  # a throwaway user, not the real one
    monkeypatch.setattr(postgres, "SYSTEM_USER", name)
    monkeypatch.delenv("PATH", raising=False)
    try:
        made = postgres._system_user()
        assert made.pw_name == name
        assert postgres._system_user().pw_uid == made.pw_uid  # found the second time
    finally:
        subprocess.run(["/usr/sbin/userdel", name], check=False, capture_output=True)
