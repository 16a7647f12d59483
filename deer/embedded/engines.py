"""Start (or reuse) the embedded servers for one data folder and stop them at the end."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import IO

from pydantic import SecretStr

from config.settings import Settings
from deer.embedded.postgres import EmbeddedPostgres
from deer.embedded.process import EngineError
from deer.embedded.valkey import EmbeddedValkey

LOCK_FILE = "deer.lock"


class Engines:
    """The embedded servers a process needs, owned through a lock on the data folder.

    The process holding `<data>/deer.lock` owns the servers: it starts them (or adopts ones a
    crashed owner left running) and stops them in `close()`. Another process on the same
    folder (`run.py migrate` beside a running `serve`) may only use servers already running.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.resolve()
        self.postgres: EmbeddedPostgres | None = None
        self.valkey: EmbeddedValkey | None = None
        self._lock: IO[str] | None = None

    @property
    def needed(self) -> bool:
        return self.settings.embedded_database or self.settings.embedded_redis

    @property
    def owner(self) -> bool:
        return self._lock is not None

    def start(self, *, exclusive: bool) -> Settings:
        """Bring up what the settings leave embedded; return settings that point at it."""
        if not self.needed:
            return self.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.embedded_database:
            self.postgres = EmbeddedPostgres(self.data_dir / "pg", self.settings.embedded_pg_port)
        if self.settings.embedded_redis:
            self.valkey = EmbeddedValkey(
                self.data_dir / "valkey", self.settings.embedded_redis_port
            )
        if self._take_lock():
            try:
                for engine in self._engines():
                    engine.start()
            except BaseException:
                self.close()
                raise
        elif exclusive:
            raise EngineError(
                f"the data folder {self.data_dir} is in use by another deer process "
                f"(pid {self._lock_holder()}): stop it, or set DEER_DATA_DIR to another folder"
            )
        elif not all(engine.attach() for engine in self._engines()):
            raise EngineError(
                f"the data folder {self.data_dir} is locked by pid {self._lock_holder()} "
                "but its servers are not running yet: try again in a moment"
            )
        changes: dict[str, object] = {}
        if self.postgres is not None:
            changes["database_url"] = SecretStr(self.postgres.url)
            changes["auto_migrate"] = self.settings.migrate_at_start
        if self.valkey is not None:
            changes["redis_url"] = SecretStr(self.valkey.url)
        return self.settings.with_values(**changes)

    def close(self) -> None:
        """Stop the servers we own (Redis first: nothing writes to it after the app is gone)."""
        if self._lock is None:
            return
        try:
            for engine in reversed(self._engines()):
                engine.stop()
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def pids(self) -> list[int]:
        return [pid for engine in self._engines() if (pid := engine.pid) is not None]

    def _engines(self) -> list[EmbeddedPostgres | EmbeddedValkey]:
        return [engine for engine in (self.postgres, self.valkey) if engine is not None]

    def _take_lock(self) -> bool:
        handle = (self.data_dir / LOCK_FILE).open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle
        return True

    def _lock_holder(self) -> str:
        try:
            return Path(self.data_dir / LOCK_FILE).read_text(encoding="utf-8").strip() or "?"
        except OSError:
            return "?"

    def __enter__(self) -> Engines:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


__all__ = ["EngineError", "Engines"]
