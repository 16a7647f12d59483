"""Per-key order at scale: 10,000 commands to 100 keys from 50 concurrent senders are applied
in send order per key, exactly once (counted in PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from actors.runtime import Runtime
from actors.testing.counter import Counter
from config.settings import Settings
from deer import cache, db
from tests.actors_support import FAST, actor_rows, eventually
from tests.actors_support import redis as redis

SENDERS = 50
KEYS_PER_SENDER = 2  # each key has one sender, so its send order is defined
PER_KEY = 100  # 50 x 2 x 100 = 10,000 commands
PARTITIONS = 16


@pytest.fixture
async def fast(settings: Settings) -> AsyncIterator[Settings]:
    fast_settings = settings.with_values(**FAST).with_values(actor_partitions=PARTITIONS)
    async with db.database(fast_settings):
        yield fast_settings


def keys_of(sender: int) -> list[str]:
    return [f"s{sender}-k{index}" for index in range(KEYS_PER_SENDER)]


async def test_ten_thousand_commands_apply_in_send_order_per_key_exactly_once(
    fast: Settings, redis: Redis
) -> None:
    host = Runtime(fast, redis, [Counter()], relay=False)
    await host.start()
    # The senders stand for other processes: a pool of their own, so 50 senders in a tight
    # loop do not keep the host's reader waiting for a connection of its pool (it then fails
    # its reads, and a sender starved of a connection for 5 s raises).
    senders = cache.create_redis(fast)
    sender = Runtime(fast, senders)  # tells only
    try:

        async def send(number: int) -> None:
            for n in range(PER_KEY):
                for key in keys_of(number):
                    await sender.tell("counter", key, {"id": f"{key}-{n}"})

        await asyncio.gather(*(send(number) for number in range(SENDERS)))

        async def applied() -> bool:
            return host.stats()["counter"]["handled"] >= SENDERS * KEYS_PER_SENDER * PER_KEY

        await eventually(applied, 120, "every command handled")
        rows = await actor_rows(fast, "counter")
        assert {key: row["state"] for key, row in rows.items()} == {
            key: {"count": PER_KEY, "applied": [f"{key}-{n}" for n in range(PER_KEY)]}
            for number in range(SENDERS)
            for key in keys_of(number)
        }
        assert {row["version"] for row in rows.values()} == {PER_KEY}
        stats = host.stats()["counter"]
        assert (stats["handled"], stats["redelivered"], stats["dead_letters"]) == (10_000, 0, 0)
    finally:
        await host.close()
        await senders.aclose(close_connection_pool=True)
