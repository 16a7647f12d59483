"""Test fixtures: real PostgreSQL and Redis, the real app factory.

`DEER_TEST_DATABASE_URL` / `DEER_TEST_REDIS_URL` name the servers (CI sets them to the
machine's); without them the embedded engines start for the session in a temporary folder.
Each session migrates a database of its own and drops it at the end; each test gets a Redis
namespace of its own and an emptied database.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from redis.asyncio import Redis

from config.settings import Settings, load_settings
from deer.app import create_app
from deer.db import asyncpg_url, migrate
from deer.embedded import Engines

KEEP_TABLES = ("tortoise_migrations",)


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_url(url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The PostgreSQL server URL and the Redis URL the session runs against."""
    database_url = os.environ.get("DEER_TEST_DATABASE_URL")
    redis_url = os.environ.get("DEER_TEST_REDIS_URL")
    engines: Engines | None = None
    folder: Path | None = None
    if database_url is None or redis_url is None:
        # Not under pytest's basetemp: concurrent pytest runs rotate those folders away.
        folder = Path(tempfile.mkdtemp(prefix="deer-test-engines-"))
        engines = Engines(
            load_settings(
                data_dir=folder,
                database_url=database_url,
                redis_url=redis_url,
                _env_file=None,
            )
        )
        started = engines.start(exclusive=True)
        assert started.database_url is not None and started.redis_url is not None
        database_url = started.database_url.get_secret_value()
        redis_url = started.redis_url.get_secret_value()
    try:
        yield database_url, redis_url
    finally:
        if engines is not None:
            engines.close()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def base_settings(
    servers: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings for a database made for this session, migrated once, dropped at the end."""
    server_url, redis_url = servers
    name = f"deer_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(_with_database(server_url, "postgres"), f'CREATE DATABASE "{name}"'))
    settings = load_settings(
        _env_file=None,
        database_url=_with_database(server_url, name),
        redis_url=redis_url,
        data_dir=tmp_path_factory.mktemp("data"),
        jwt_secret="test-secret-of-at-least-32-bytes-long!!",
        log_level="WARNING",
        db_pool_max=20,
    )
    asyncio.run(migrate(settings))
    try:
        yield settings
    finally:
        asyncio.run(
            _admin(
                _with_database(server_url, "postgres"),
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            )
        )


@pytest.fixture
async def settings(base_settings: Settings) -> AsyncIterator[Settings]:
    """This test's settings: its own Redis namespace; tables emptied and keys removed after."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    yield base_settings.with_values(redis_namespace=namespace)
    await _empty_tables(base_settings)
    await _drop_namespace(base_settings, namespace)


async def _empty_tables(settings: Settings) -> None:
    assert settings.database_url is not None
    connection = await asyncpg.connect(asyncpg_url(settings.database_url.get_secret_value()))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        names = [f'"{row["tablename"]}"' for row in tables if row["tablename"] not in KEEP_TABLES]
        if names:
            await connection.execute(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


async def _drop_namespace(settings: Settings, namespace: str) -> None:
    assert settings.redis_url is not None
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        async for found in redis.scan_iter(match=f"{namespace}:*", count=500):
            await redis.delete(found)
    finally:
        await redis.aclose()


@pytest.fixture
def make_settings(settings: Settings) -> Any:
    """Settings of this test with some values changed (a smaller body limit, CORS...)."""

    def make(**changes: Any) -> Settings:
        return settings.with_values(**changes)

    return make


@pytest.fixture
def app(settings: Settings, request: pytest.FixtureRequest) -> web.Application:
    if request.node.get_closest_marker("manual_outbox_relay"):  # the test relays it itself
        return create_app(settings.with_values(outbox_relay=False))
    return create_app(settings)


@pytest.fixture
async def client(aiohttp_client: Any, app: web.Application) -> TestClient[Any, Any]:
    test_client: TestClient[Any, Any] = await aiohttp_client(app)
    return test_client


@pytest.fixture
def secret_url() -> Any:
    def reveal(value: SecretStr | None) -> str:
        assert value is not None
        return value.get_secret_value()

    return reveal


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent
