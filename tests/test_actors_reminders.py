"""Reminders: an actor's durable message to itself, fired after its time by whichever process
owns the partition then; through a restart, a change of owner, and cancelled by id."""

from __future__ import annotations

import asyncio
import math
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from actors.base import CommandResult, partition_of, reminder_command_id
from actors.runtime import Runtime, reminder_bodies_key, reminders_key
from actors.testing.counter import Counter
from config.settings import Settings
from deer import cache
from tests.actors_support import FAST, actor_rows, eventually
from tests.actors_support import fast as fast
from tests.actors_support import redis as redis
from tests.actors_support.workers import Worker, spawn
from tests.actors_support.workers import workers as workers

KEY = "42"
FIRED = reminder_command_id("counter", KEY, "r1")


async def started(runtime: Runtime) -> Runtime:
    await runtime.start()
    return runtime


def remind(command_id: str, reminder_id: str, at: float) -> dict[str, Any]:
    """A counter command that schedules `<reminder_id>-fired` at `at`."""
    return {
        "id": command_id,
        "remind": {"id": reminder_id, "at": at, "command": {"id": f"{reminder_id}-fired"}},
    }


async def waiting(settings: Settings, redis: Redis) -> int:
    """Reminders of KEY's partition still waiting (sorted set and bodies agree)."""
    partition = partition_of(KEY, settings.actor_partitions)
    count = await redis.zcard(reminders_key(settings, "counter", partition))
    assert await redis.hlen(reminder_bodies_key(settings, "counter", partition)) == count
    return int(count)


async def fired(runtime: Runtime, command_id: str = FIRED) -> bool:
    return await runtime.outcome(command_id) is not None


async def test_a_reminder_fires_after_its_time(fast: Settings, redis: Redis) -> None:
    host = await started(Runtime(fast, redis, [Counter()]))
    try:
        at = time.time() + 0.4
        assert await host.ask("counter", KEY, remind("a", "r1", at)) == 1
        partition = partition_of(KEY, fast.actor_partitions)
        assert await redis.zrange(
            reminders_key(fast, "counter", partition), 0, -1, withscores=True
        ) == [(FIRED.encode(), float(math.ceil(at * 1000)))]
        while not await fired(host):
            await asyncio.sleep(0.01)
            assert time.time() < at + 10, "the reminder did not fire"
        assert time.time() >= at
        assert await host.outcome(FIRED) == CommandResult(FIRED, True, 2, None)
        rows = await actor_rows(fast, "counter")
        assert rows[KEY]["state"] == {"count": 2, "applied": ["a", "r1-fired"]}
        assert await waiting(fast, redis) == 0
        assert host.stats()["counter"]["reminders_fired"] == 1
    finally:
        await host.close()


async def test_a_reminder_follows_its_partition_to_the_next_owner(
    fast: Settings, redis: Redis
) -> None:
    first = await started(Runtime(fast, redis, [Counter()], process_id="first"))
    try:
        assert await first.ask("counter", KEY, remind("a", "r1", time.time() + 0.5)) == 1
    finally:
        await first.close()  # releases every partition before the reminder is due
    assert await waiting(fast, redis) == 1
    second = await started(Runtime(fast, redis, [Counter()], process_id="second"))
    try:
        await eventually(lambda: fired(second), 10, "the reminder fired by the new owner")
        assert second.stats()["counter"]["reminders_fired"] == 1
        assert first.stats()["counter"]["reminders_fired"] == 0
        rows = await actor_rows(fast, "counter")
        assert rows[KEY]["state"] == {"count": 2, "applied": ["a", "r1-fired"]}
        assert await waiting(fast, redis) == 0
    finally:
        await second.close()


async def test_cancelled_reminders_never_fire(fast: Settings, redis: Redis) -> None:
    host = await started(Runtime(fast, redis, [Counter()]))
    try:
        soon = time.time() + 0.3
        assert await host.ask("counter", KEY, remind("a", "r1", soon)) == 1
        assert await host.ask("counter", KEY, remind("b", "r2", soon)) == 2
        assert await host.ask("counter", KEY, remind("c", "r3", soon + 0.2)) == 3
        assert await host.ask("counter", KEY, {"id": "d", "cancel": "r1"}) == 4  # by the actor
        assert await host.cancel_reminder("counter", KEY, "r2") is True  # from outside
        assert await host.cancel_reminder("counter", KEY, "r2") is False
        assert await waiting(fast, redis) == 1

        last = reminder_command_id("counter", KEY, "r3")  # due after the cancelled ones
        await eventually(lambda: fired(host, last), 10, "the remaining reminder fired")
        rows = await actor_rows(fast, "counter")
        assert rows[KEY]["state"] == {"count": 5, "applied": ["a", "b", "c", "d", "r3-fired"]}
        assert await waiting(fast, redis) == 0
        assert host.stats()["counter"]["reminders_fired"] == 1
    finally:
        await host.close()


@pytest.mark.slow
async def test_a_reminder_fires_after_the_only_worker_is_killed_and_restarted(
    settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    fast = settings.with_values(**FAST).with_values(actor_lease_ttl=0.6, actor_lease_renew=0.2)
    async with cache.redis_client(fast) as redis:
        sender = Runtime(fast, redis)  # tells only
        worker = await spawn(fast, tmp_path, workers)
        scheduled = await sender.tell("counter", KEY, remind("a", "r1", time.time() + 1.5))
        await eventually(lambda: fired(sender, scheduled), 10, "the reminder scheduled")
        worker.process.send_signal(signal.SIGKILL)
        await worker.process.wait()
        assert await waiting(fast, redis) == 1  # not fired before the kill: it is in Redis

        restarted = await spawn(fast, tmp_path, workers)
        await eventually(lambda: fired(sender), 15, "the reminder fired after the restart")
        assert await sender.outcome(FIRED) == CommandResult(FIRED, True, 2, None)
        rows = await actor_rows(fast, "counter")
        assert rows[KEY]["state"] == {"count": 2, "applied": ["a", "r1-fired"]}
        assert await waiting(fast, redis) == 0
        restarted.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(restarted.process.wait(), 20) == 0
