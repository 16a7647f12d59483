"""The runtime's numbers as Prometheus families, read at scrape time."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from actors import metrics
from actors.base import CommandFailed, reminder_command_id
from actors.runtime import Runtime
from actors.testing.counter import Counter
from config.settings import Settings
from deer import db
from tests.actors_support import FAST, eventually
from tests.actors_support import redis as redis


@pytest.fixture
async def fast(settings: Settings) -> AsyncIterator[Settings]:
    fast_settings = settings.with_values(**FAST).with_values(actor_max_in_flight=1)
    async with db.database(fast_settings):
        yield fast_settings


def scrape(registry: CollectorRegistry) -> dict[str, float]:
    """Every sample of kind `counter`: name (with `le` for buckets) -> value."""
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            assert sample.labels.pop("kind") == "counter"
            name = sample.name + "".join(f"[{v}]" for v in sample.labels.values())
            samples[name] = sample.value
    return samples


async def test_runtime_numbers_are_exported(fast: Settings, redis: Redis) -> None:
    host = Runtime(fast, redis, [Counter()], relay=False)
    await host.start()
    registry = CollectorRegistry(auto_describe=False)
    metrics.register(registry, host)
    try:
        for n in range(3):  # one in flight at a time (DEER_ACTOR_MAX_IN_FLIGHT=1): two wait
            await host.tell("counter", "slow", {"id": f"s{n}", "sleep": 0.3})
        counter = host.hosts["counter"]

        async def busy() -> bool:
            return counter.in_flight == 1

        await eventually(busy, 10, "the first slow command in flight")
        await counter.tick()
        seen = scrape(registry)
        assert (seen["deer_actor_mailbox_depth"], seen["deer_actor_stream_pending"]) == (1, 1)
        assert seen["deer_actor_stream_lag"] == 2

        async def drained() -> bool:
            return counter.stats.handled == 3

        await eventually(drained, 10, "the slow commands handled")
        with pytest.raises(CommandFailed):
            await host.ask("counter", "k", {"id": "bad", "fail": True})
        reminder = {"id": "r", "at": time.time() + 0.2, "command": {"id": "r-fired"}}
        assert await host.ask("counter", "k", {"id": "a", "remind": reminder}) == 1
        fired = reminder_command_id("counter", "k", "r")

        async def reminded() -> bool:
            return await host.outcome(fired) is not None

        await eventually(reminded, 10, "the reminder fired")
        await counter.tick()
        seen = scrape(registry)
        buckets = {name: value for name, value in seen.items() if "_bucket" in name}
        assert buckets["deer_actor_handle_duration_seconds_bucket[+Inf]"] == 6
        assert sorted(buckets.values()) == list(buckets.values())  # cumulative
        assert seen["deer_actor_handle_duration_seconds_sum"] > 0.9  # three sleeps of 0.3 s
        assert {
            name: value
            for name, value in seen.items()
            if "_bucket" not in name and not name.endswith(("_sum", "_created"))
        } == {
            "deer_actor_partitions_owned": 4,
            "deer_actor_actors_in_memory": 2,
            "deer_actor_mailbox_depth": 0,
            "deer_actor_stream_pending": 0,
            "deer_actor_stream_lag": 0,
            "deer_actor_reminders_due": 0,
            "deer_actor_dead_letters_waiting": 1,
            "deer_actor_handled_total": 6,  # three slow, the dead letter, the ask, the reminder
            "deer_actor_redeliveries_total": 0,
            "deer_actor_duplicates_total": 0,
            "deer_actor_dead_letters_total": 1,
            "deer_actor_stale_commits_total": 0,
            "deer_actor_reminders_fired_total": 1,
            "deer_actor_commits_total": 6,  # one turn in flight at a time: batches of one
            "deer_actor_handle_duration_seconds_count": 6,
        }
    finally:
        await host.close()
