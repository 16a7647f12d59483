"""PostgreSQL through tortoise-orm on asyncpg: configuration, migrations, health."""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext, get_current_context
from tortoise.migrations.api.migrate import migrate as tortoise_migrate

from config.settings import Settings

log = logging.getLogger(__name__)

APP_LABEL: Final = "deer"
MODEL_MODULES: Final = [
    "deer.accounts.models",
    "deer.access.models",
    "deer.catalog.models",
    "deer.shop.models",
    "actors.models",
]
MIGRATIONS: Final = "deer.migrations"
MIGRATION_LOCK: Final = 0x6465_6572  # "deer": one migrator at a time across processes


def asyncpg_url(url: str) -> str:
    """The URL with a plain `postgresql` scheme, as asyncpg and psql want it."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset on release, after asyncpg's own rollback of an open transaction.

    asyncpg's default reset is one more round trip per release (`pg_advisory_unlock_all(); CLOSE
    ALL; UNLISTEN *; RESET ALL`), 6-7% of an actor worker's CPU. deer leaves nothing in a session
    for it to undo: advisory locks are transaction-scoped (`pg_advisory_xact_lock`), there are no
    cursors outside transactions, no LISTEN and no `SET` (the migrator's session lock is on a
    connection of its own). Keep it that way, or give the pool its default reset back.
    """


def tortoise_config(settings: Settings) -> dict[str, Any]:
    assert settings.database_url is not None, "start the engines before the database"
    url = urlsplit(settings.database_url.get_secret_value())
    connection = expand_db_url(urlunsplit(url._replace(scheme="asyncpg")))
    connection["credentials"].update(
        minsize=settings.db_pool_min,
        maxsize=settings.db_pool_max,
        server_settings={"application_name": "deer"},
        reset=_keep_session,  # passed through to asyncpg.create_pool
    )
    return {
        "connections": {"default": connection},
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "migrations": MIGRATIONS,
                "default_connection": "default",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


_closed: weakref.WeakSet[TortoiseContext] = weakref.WeakSet()


class Database:
    """The process's tortoise context and its pool; shared when one is already active."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._context: TortoiseContext | None = None
        self._owner = False

    async def open(self) -> None:
        current = get_current_context()
        if current is not None and current.inited and current not in _closed:
            self._context = current  # a second app in the same process (tests) shares it
            return
        self._context = await Tortoise.init(
            config=tortoise_config(self.settings), _enable_global_fallback=True
        )
        self._owner = True

    async def close(self) -> None:
        if self._owner and self._context is not None:
            await self._context.close_connections()
            # A task that saw this context keeps it in its context variable, still "inited":
            # a later app in that task (tests restarting one) must open a new one.
            _closed.add(self._context)
        self._context = None

    def pool(self) -> asyncpg.Pool | None:
        if self._context is None:
            return None
        client = self._context.connections.get("default")
        pool: asyncpg.Pool | None = getattr(client, "_pool", None)
        return pool

    async def ping(self) -> None:
        assert self._context is not None
        await self._context.connections.get("default").execute_query("SELECT 1")


async def migrate(settings: Settings) -> None:
    """Apply pending migrations, one process at a time (a PostgreSQL advisory lock)."""
    assert settings.database_url is not None
    lock = await asyncpg.connect(asyncpg_url(settings.database_url.get_secret_value()))
    try:
        await lock.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        async with TortoiseContext():
            await tortoise_migrate(config=tortoise_config(settings), progress=_report)
    finally:
        await lock.close()  # closing the session releases the lock


def _report(event: str, app_label: str, name: str) -> None:
    if event == "apply_done":
        log.info("applied migration %s.%s", app_label, name)


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings)
    await db.open()
    try:
        yield db
    finally:
        await db.close()


async def make_migrations(settings: Settings, name: str | None) -> None:
    """Write a migration for model changes (developers; the files are committed)."""
    import sys
    import types

    from tortoise.cli.cli import CLIContext, makemigrations

    holder = types.ModuleType("_deer_tortoise_config")
    setattr(holder, "TORTOISE_ORM", tortoise_config(settings))  # noqa: B010 - tortoise's CLI imports it by name
    sys.modules[holder.__name__] = holder
    await makemigrations(
        CLIContext(config=f"{holder.__name__}.TORTOISE_ORM", config_file=None), (), False, name
    )
