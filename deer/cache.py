"""Redis through `redis.asyncio`: one connection pool per process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hiredis
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import (
    AbstractConnection,
    Connection,
    SSLConnection,
    UnixDomainSocketConnection,
)
from redis.exceptions import DataError

from config.settings import Settings

SOCKET_TIMEOUT = 5.0
POOL_WAIT = 5.0


def key(settings: Settings, *parts: str | int) -> str:
    """A Redis key inside this deployment's namespace: `key(s, "events")` -> `deer:events`."""
    return ":".join([settings.redis_namespace, *map(str, parts)])


class _HiredisPacking:
    """Commands packed by hiredis (C), as redis-py's synchronous client does: its asyncio
    connection packs in Python, an encode and a join per argument, which was a tenth of an
    actor worker's CPU (a read names 16 streams, an acknowledgement many entries). The same
    bytes: hiredis and redis-py's encoder both write floats with `repr` and refuse bools."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str):  # "XINFO GROUPS" and the like: one argument per word
            args = (*args[0].encode().split(), *args[1:])
        elif b" " in args[0]:
            args = (*args[0].split(), *args[1:])
        try:
            return [hiredis.pack_command(args)]
        except TypeError:
            pass  # a memoryview or bytearray (rare: converted only then), or a wrong value
        args = tuple(bytes(a) if isinstance(a, memoryview | bytearray) else a for a in args)
        try:
            return [hiredis.pack_command(args)]
        except TypeError as exc:
            raise DataError(str(exc)) from None


class _PackedConnection(_HiredisPacking, Connection):
    pass


class _PackedSSLConnection(_HiredisPacking, SSLConnection):
    pass


class _PackedUnixConnection(_HiredisPacking, UnixDomainSocketConnection):
    pass


_PACKED: dict[type[AbstractConnection], type[AbstractConnection]] = {
    Connection: _PackedConnection,
    SSLConnection: _PackedSSLConnection,
    UnixDomainSocketConnection: _PackedUnixConnection,
}


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
    # The URL's scheme chose the class (TCP, TLS or a Unix socket); no connection exists yet.
    pool.connection_class = _PACKED.get(pool.connection_class, pool.connection_class)
    return Redis(connection_pool=pool)


@asynccontextmanager
async def redis_client(settings: Settings) -> AsyncIterator[Redis]:
    client = create_redis(settings)
    try:
        yield client
    finally:
        await client.aclose(close_connection_pool=True)
