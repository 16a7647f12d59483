"""Workers die, stop and pause at random while asks and tells flow: every command is still
applied exactly once, in send order per key, and every event is published once.

Three real worker processes share 8 partitions (leases of 1 s, renewed every 0.3 s). Every 1 to
2.5 s one of them is, at random: killed (SIGKILL, then a new one started), stopped (SIGTERM:
it finishes its turns and hands its leases over; a new one started) or paused (SIGSTOP for 1.2
to 3 s, past its lease, then SIGCONT: its commits in flight must be fenced off). Meanwhile ten
senders each send to their own five keys, half tells, half asks (an ask that times out is still
applied once). `DEER_CHAOS_SECONDS` (default 30) and `DEER_CHAOS_SEED` (default 1) make it
longer or different (docs/actors.md, *Recovery*, has the numbers of longer runs)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
from pathlib import Path
from typing import Final

import orjson
import pytest
from redis.asyncio import Redis

from actors.base import AskTimeout
from actors.leases import lease_key
from actors.outbox import events_key
from actors.runtime import Runtime, stream_key
from config.settings import Settings
from deer import cache
from tests.actors_support import actor_rows, eventually, pending_entries
from tests.actors_support.workers import Worker, spawn
from tests.actors_support.workers import workers as workers

PARTITIONS: Final = 8
SENDERS: Final = 10
KEYS_PER_SENDER: Final = 5
SECONDS: Final = float(os.environ.get("DEER_CHAOS_SECONDS", "30"))
SEED: Final = int(os.environ.get("DEER_CHAOS_SEED", "1"))

pytestmark = pytest.mark.slow


class Chaos:
    """The workers alive, and what was done to them."""

    def __init__(self, settings: Settings, tmp_path: Path, workers: list[Worker]) -> None:
        self.settings = settings
        self.tmp_path = tmp_path
        self.workers = workers
        self.alive: list[Worker] = []
        self.done: dict[str, int] = {"kill": 0, "term": 0, "pause": 0}

    async def start(self, count: int) -> None:
        for _ in range(count):
            self.alive.append(await spawn(self.settings, self.tmp_path, self.workers))

    async def replace(self, victim: Worker) -> None:
        self.alive.remove(victim)
        await self.start(1)

    async def strike(self, rng: random.Random) -> None:
        victim = rng.choice(self.alive)
        what = rng.choice(["kill", "kill", "term", "pause"])
        self.done[what] += 1
        if what == "kill":
            victim.process.send_signal(signal.SIGKILL)
            await victim.process.wait()
            await self.replace(victim)
        elif what == "term":
            victim.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(victim.process.wait(), 30) == 0
            await self.replace(victim)
        else:
            victim.process.send_signal(signal.SIGSTOP)
            await asyncio.sleep(rng.uniform(1.2, 3.0))
            victim.process.send_signal(signal.SIGCONT)


@pytest.mark.timeout(SECONDS + 240)
async def test_random_kills_stops_and_pauses_lose_and_double_nothing(
    settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    fast = settings.with_values(
        actor_partitions=PARTITIONS, actor_lease_ttl=1.0, actor_lease_renew=0.3
    )
    rng = random.Random(SEED)
    chaos = Chaos(fast, tmp_path, workers)
    sent: dict[str, int] = {}
    stop_at = time.monotonic() + SECONDS
    async with cache.redis_client(fast) as redis:
        sender = Runtime(fast, redis)
        await sender.start()
        try:
            await chaos.start(3)

            async def send(index: int) -> None:
                keys = [f"s{index}k{k}" for k in range(KEYS_PER_SENDER)]
                sent.update(dict.fromkeys(keys, 0))
                while time.monotonic() < stop_at:
                    key = rng.choice(keys)
                    command = {"id": f"{key}-{sent[key]}"}
                    if rng.random() < 0.5:
                        await sender.tell("counter", key, command)
                        sent[key] += 1
                    else:
                        sent[key] += 1  # appended before the wait: applied even on a timeout
                        with contextlib.suppress(AskTimeout):
                            await sender.ask("counter", key, command, timeout=3)
                    await asyncio.sleep(rng.uniform(0, 0.02))

            async def strike() -> None:
                while time.monotonic() < stop_at - 3:
                    await asyncio.sleep(rng.uniform(1.0, 2.5))
                    await chaos.strike(rng)

            await asyncio.gather(*(send(index) for index in range(SENDERS)), strike())
            assert chaos.done["kill"] > 0 and sum(chaos.done.values()) >= SECONDS / 10
            await check_exactly_once(fast, redis, sent)
            fenced = fenced_turns(tmp_path)
            print(f"{sum(sent.values())} commands, {chaos.done}, {fenced} turns fenced off")
            for worker in chaos.alive:
                worker.process.send_signal(signal.SIGTERM)
            for worker in chaos.alive:
                assert await asyncio.wait_for(worker.process.wait(), 30) == 0
            leases = await redis.mget([lease_key(fast, "counter", p) for p in range(PARTITIONS)])
            assert leases == [None] * PARTITIONS
        finally:
            await sender.close()


def fenced_turns(logs: Path) -> int:
    """Turns the workers' logs say were refused by the fencing check (stale owners)."""
    return sum(log.read_text().count("fenced off") for log in logs.glob("worker-*.log"))


async def check_exactly_once(fast: Settings, redis: Redis, sent: dict[str, int]) -> None:
    """Every key's commands applied once, in send order; each one's event published once;
    nothing left pending."""
    total = sum(sent.values())

    async def all_applied() -> bool:
        rows = await actor_rows(fast, "counter")
        return sum(row["state"]["count"] for row in rows.values()) >= total

    await eventually(all_applied, 120, "every command applied")
    rows = await actor_rows(fast, "counter")
    assert {key: row["state"]["applied"] for key, row in rows.items()} == {
        key: [f"{key}-{n}" for n in range(count)] for key, count in sent.items() if count
    }

    async def relayed() -> bool:
        return bool(await redis.xlen(events_key(fast)) >= total)

    await eventually(relayed, 60, "every event relayed")
    published: dict[str, list[int]] = {key: [] for key in sent}
    for _, fields in await redis.xrange(events_key(fast)):
        event = orjson.loads(fields[b"event"])
        published[event["key"]].append(event["count"])
    assert published == {key: list(range(1, count + 1)) for key, count in sent.items()}

    async def acknowledged() -> bool:
        streams = [stream_key(fast, "counter", p) for p in range(PARTITIONS)]
        return [await pending_entries(redis, stream) for stream in streams] == [0] * PARTITIONS

    await eventually(acknowledged, 20, "every entry acknowledged")
