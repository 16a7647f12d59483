"""The process's Redis client: commands packed by hiredis, byte for byte as redis-py would."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError, ResponseError

from config.settings import Settings
from deer.cache import DirectScript, create_redis, key

ARGUMENTS: list[tuple[Any, ...]] = [
    ("SET", "k", "value"),
    ("XINFO GROUPS", "stream"),  # a command name of two words
    (b"CONFIG GET", b"maxmemory"),
    ("HSET", "h", "ü 名", 1.5, 0.1, 1e20, -3, 2**70, b"\x00\xff"),
    ("SET", "k", memoryview(b"bytes"), bytearray(b"more")),
    ("EVALSHA", "0" * 40, 2, "a", "b", ""),
]


@pytest.mark.parametrize("args", ARGUMENTS)
async def test_commands_are_packed_as_redis_py_packs_them(settings: Settings, args: Any) -> None:
    redis = create_redis(settings)
    try:
        ours = redis.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        plain = Connection()
        assert b"".join(ours.pack_command(*args)) == b"".join(plain.pack_command(*args))
    finally:
        await redis.aclose(close_connection_pool=True)


async def test_a_value_redis_cannot_hold_is_refused_before_sending(settings: Settings) -> None:
    redis = create_redis(settings)
    try:
        for value in (True, None, object()):
            with pytest.raises(DataError):
                await redis.set(key(settings, "refused"), value)  # type: ignore[arg-type]
        assert await redis.exists(key(settings, "refused")) == 0
    finally:
        await redis.aclose(close_connection_pool=True)


async def test_commands_and_pipelines_round_trip(settings: Settings) -> None:
    redis = create_redis(settings)
    name = key(settings, "packed")
    try:
        await redis.hset(name, mapping={"text": "ü 名", "number": 1.5, "bytes": b"\x00\xff"})
        assert await redis.hgetall(name) == {
            b"text": "ü 名".encode(),
            b"number": b"1.5",
            b"bytes": b"\x00\xff",
        }
        async with redis.pipeline(transaction=True) as pipe:
            pipe.xadd(name + ":s", {"f": "v"})
            pipe.xgroup_create(name + ":s", "g", id="0")
            pipe.xinfo_groups(name + ":s")
            _, created, groups = await pipe.execute()
        assert created is True
        assert [group["name"] for group in groups] == [b"g"]
        assert await redis.config_get("maxmemory")  # "CONFIG GET": split into two words
    finally:
        await redis.delete(name, name + ":s")
        await redis.aclose(close_connection_pool=True)


def test_every_kind_of_url_gets_a_packing_connection() -> None:
    for url, base in (
        ("redis://127.0.0.1:6379/0", Connection),
        ("unix:///run/redis.sock?db=0", UnixDomainSocketConnection),
    ):
        settings = Settings(_env_file=None, redis_url=url)
        redis = create_redis(settings)
        connection_class = redis.connection_pool.connection_class
        assert issubclass(connection_class, base)
        assert connection_class is not base


INCREMENT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"
# Runs for about 0.1 s (a script cannot block on a key: BLPOP in one returns at once).
BUSY = """
local start = redis.call('TIME')
repeat
  local now = redis.call('TIME')
until (now[1] - start[1]) * 1000000 + now[2] - start[2] > 100000
return redis.call('INCR', KEYS[1])
"""


async def test_a_direct_script_runs_on_kept_connections(settings: Settings) -> None:
    """Loaded on first use and again after a SCRIPT FLUSH; an error reply keeps the connection;
    a command cancelled mid-way closes its connection; at most `keep` are kept."""
    redis = create_redis(settings)
    script = DirectScript(redis, INCREMENT, keep=2)
    counter = key(settings, "direct")
    try:
        assert await script([counter], [2]) == 2
        assert await script([counter], [3]) == 5
        await redis.script_flush()
        assert await script([counter], [1]) == 6  # not loaded any more: EVAL, once
        with pytest.raises(ResponseError):
            await script([counter], ["not a number"])
        assert await script([counter], [1]) == 7

        busy = DirectScript(redis, BUSY, keep=2)
        waiting = asyncio.create_task(busy([counter + ":busy"], []))
        await asyncio.sleep(0.03)  # sent, its reply not read yet
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert busy._idle == []  # closed: its reply would be read by the next command
        # Its own reply (the cancelled one ran too: 1), not the cancelled command's.
        assert await busy([counter + ":busy"], []) == 2
        await busy.close()

        # Redis drops the kept connections (as when it restarts): the next command connects
        # again instead of failing on a dead one.
        kept = await script.execute("CLIENT", "ID")  # the one connection kept so far
        assert await redis.client_kill_filter(_id=kept) == 1
        await asyncio.sleep(0.1)
        assert await script([counter], [1]) == 8
        assert await script.execute("CLIENT", "ID") != kept

        slow = DirectScript(
            redis, "redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])", keep=2
        )
        results = await asyncio.gather(*(slow([counter + ":n"], []) for _ in range(10)))
        assert sorted(int(value) for value in results) == list(range(1, 11))
        assert len(slow._idle) == 2  # ten at once, two kept, the others back in the pool
        await slow.close()
    finally:
        await script.close()
        await redis.delete(counter, counter + ":n", counter + ":busy")
        await redis.aclose(close_connection_pool=True)
