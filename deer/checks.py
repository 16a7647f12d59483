"""Backend pings for `run.py check`: each backend answers or says why not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from config.settings import Settings

TIMEOUT = 3.0


async def _timed(coro: Awaitable[str]) -> tuple[bool, str]:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(TIMEOUT):
            detail = await coro
    except Exception as exc:  # a check reports every failure
        return False, f"{type(exc).__name__}: {exc}"
    return True, f"{detail} ({(time.perf_counter() - started) * 1000:.1f} ms)"


async def _postgres(settings: Settings) -> str:
    import asyncpg

    from deer.db import asyncpg_url

    assert settings.database_url is not None
    connection = await asyncpg.connect(asyncpg_url(settings.database_url.get_secret_value()))
    try:
        version: str = await connection.fetchval("SHOW server_version")
    finally:
        await connection.close()
    return f"PostgreSQL {version}"


async def _redis(settings: Settings) -> str:
    from deer.cache import redis_client

    async with redis_client(settings) as redis:
        info = await redis.info("server")
    name = "Valkey" if "valkey_version" in info else "Redis"
    return f"{name} {info.get('valkey_version') or info.get('redis_version')}"


async def _search(settings: Settings) -> str:
    if settings.search_url is None:
        return "embedded index (nothing to ping yet)"
    from elasticsearch import AsyncElasticsearch

    client = AsyncElasticsearch(settings.search_url.get_secret_value())
    try:
        info = await client.info()
    finally:
        await client.close()
    return f"Elasticsearch {info['version']['number']}"


async def ping_backends(settings: Settings) -> dict[str, tuple[bool, str]]:
    names = ("postgres", "redis", "search")
    results = await asyncio.gather(
        _timed(_postgres(settings)), _timed(_redis(settings)), _timed(_search(settings))
    )
    return dict(zip(names, results, strict=True))
