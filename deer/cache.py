"""Redis through `redis.asyncio`: one connection pool per process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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
from redis.exceptions import DataError, NoScriptError, ResponseError

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


def _closed_by_peer(connection: AbstractConnection) -> bool:
    """Whether Redis closed this idle connection (its end of stream already read by the event
    loop): a look at the stream, no system call, unlike the pool's readiness check."""
    reader: asyncio.StreamReader | None = getattr(connection, "_reader", None)
    return reader is not None and (reader.at_eof() or reader.exception() is not None)


class DirectCommands:
    """Commands sent by many tasks at once over pool connections kept between commands, for a
    hot path (an actor ask's append). redis-py's blocking pool takes a condition, a timeout and
    a readiness check (a system call) per command: two fifths of an ask's CPU in the asking
    process. Here a command takes a kept connection when one is idle and goes to the pool only
    when none is (which bounds them all); up to `keep` stay kept after their command, the
    others go back. They stay the pool's, so closing the pool closes them too.

    A failed command is not retried (an append must not happen twice). A connection that failed
    or was cancelled mid-command is closed before it goes back (its late reply would answer the
    next command); one that Redis answered with an error is kept.
    """

    def __init__(self, redis: Redis, keep: int) -> None:
        self._pool = redis.connection_pool
        self._keep = keep
        self._idle: list[AbstractConnection] = []

    async def execute(self, *args: Any) -> Any:
        if self._idle:
            connection = self._idle.pop()
            if _closed_by_peer(connection):  # Redis restarted or dropped it while kept
                await connection.disconnect()  # and the send below connects again
        else:
            connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_command(*args)
            reply = await connection.read_response()
        except ResponseError:
            await self._put_back(connection)  # refused by Redis: the connection is sound
            raise
        except BaseException:
            await connection.disconnect(nowait=True)
            await self._pool.release(connection)
            raise
        await self._put_back(connection)
        return reply

    async def _put_back(self, connection: AbstractConnection) -> None:
        if len(self._idle) < self._keep:
            self._idle.append(connection)
        else:
            await self._pool.release(connection)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            with contextlib.suppress(Exception):
                await self._pool.release(connection)


class DirectScript(DirectCommands):
    """One Lua script run through `DirectCommands`: by its SHA1, loaded when Redis lacks it."""

    def __init__(self, redis: Redis, script: str, keep: int) -> None:
        super().__init__(redis, keep)
        self._script = script
        self._sha = hashlib.sha1(script.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.execute("EVALSHA", self._sha, len(keys), *keys, *args)
        except NoScriptError:  # not loaded yet (or Redis restarted): the script itself, once
            return await self.execute("EVAL", self._script, len(keys), *keys, *args)
