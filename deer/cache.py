"""Redis through `redis.asyncio`: one connection pool per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from redis.asyncio import BlockingConnectionPool, Redis

from config.settings import Settings

SOCKET_TIMEOUT = 5.0
POOL_WAIT = 5.0


def key(settings: Settings, *parts: str | int) -> str:
    """A Redis key inside this deployment's namespace: `key(s, "events")` -> `deer:events`."""
    return ":".join([settings.redis_namespace, *map(str, parts)])


def create_redis(settings: Settings) -> Redis:
    assert settings.redis_url is not None, "start the engines before Redis"
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=settings.redis_pool_max,
        timeout=POOL_WAIT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
        decode_responses=False,
    )
    return Redis(connection_pool=pool)


@asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(settings)
    try:
        yield client
    finally:
        await client.aclose(close_connection_pool=True)
