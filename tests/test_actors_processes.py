"""Real worker processes share the partitions: one joins, one is killed with SIGKILL mid-run,
and every command is still applied exactly once, in send order per key (counted in
PostgreSQL). Short leases: 1 s, renewed every 0.3 s."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from actors.leases import lease_key
from actors.outbox import events_key
from actors.runtime import Runtime, stream_key
from config.settings import Settings
from deer import cache
from tests.actors_support import actor_rows, eventually

ROOT = Path(__file__).resolve().parent.parent
PARTITIONS = 8
KEYS = [f"k{index}" for index in range(12)]
ROUNDS = 25
JOIN_AT, KILL_AT = 6, 14

pytestmark = pytest.mark.slow


class Worker:
    """One `python -m actors.testing.worker` process; its id is what its leases carry."""

    def __init__(self, process: asyncio.subprocess.Process, process_id: str) -> None:
        self.process = process
        self.process_id = process_id


def worker_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None and settings.redis_url is not None
    env = {name: value for name, value in os.environ.items() if not name.startswith("DEER_")}
    env.update(
        DEER_DATABASE_URL=settings.database_url.get_secret_value(),
        DEER_REDIS_URL=settings.redis_url.get_secret_value(),
        DEER_REDIS_NAMESPACE=settings.redis_namespace,
        DEER_ACTOR_PARTITIONS=str(PARTITIONS),
        DEER_ACTOR_LEASE_TTL="1",
        DEER_ACTOR_LEASE_RENEW="0.3",
        DEER_LOG_LEVEL="WARNING",
        DEER_DB_POOL_MAX="4",
        DEER_SHUTDOWN_TIMEOUT="5",
    )
    return env


@pytest.fixture
async def workers(settings: Settings, tmp_path: Path) -> AsyncIterator[list[Worker]]:
    """Started workers, all stopped (SIGKILL at the latest) when the test ends."""
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
        await worker.process.wait()


async def spawn(settings: Settings, tmp_path: Path, workers: list[Worker]) -> Worker:
    log = (tmp_path / f"worker-{len(workers)}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actors.testing.worker",
        cwd=ROOT,
        env=worker_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    log.close()  # the child has its own copy
    worker = Worker(process, "")
    workers.append(worker)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line.startswith(b"ready "), line
    worker.process_id = line.split()[1].decode()
    return worker


async def holders(settings: Settings, redis: Redis) -> list[str | None]:
    values = await redis.mget([lease_key(settings, "counter", p) for p in range(PARTITIONS)])
    return [None if value is None else value.decode().split(":")[0] for value in values]


async def test_kill_9_mid_run_applies_every_command_exactly_once(
    settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    fast = settings.with_values(
        actor_partitions=PARTITIONS, actor_lease_ttl=1.0, actor_lease_renew=0.3
    )
    async with cache.redis_client(fast) as redis:
        sender = Runtime(fast, redis)  # tells only: no reply channel needed
        first = await spawn(fast, tmp_path, workers)
        second = await spawn(fast, tmp_path, workers)

        for round_ in range(ROUNDS):
            if round_ == JOIN_AT:
                third = await spawn(fast, tmp_path, workers)
            if round_ == KILL_AT:
                assert first.process_id in await holders(fast, redis)  # it owns work to lose
                first.process.send_signal(signal.SIGKILL)
                await first.process.wait()
            for key in KEYS:
                await sender.tell("counter", key, {"id": f"{key}-{round_}", "sleep": 0.02})
            await asyncio.sleep(0.05)

        survivors = {second.process_id, third.process_id}

        async def taken_over() -> bool:
            return set(await holders(fast, redis)) <= survivors

        await eventually(taken_over, 10, "every partition leased by a surviving worker")

        async def all_applied() -> bool:
            rows = await actor_rows(fast, "counter")
            return sum(row["state"]["count"] for row in rows.values()) >= len(KEYS) * ROUNDS

        await eventually(all_applied, 40, "every command applied")
        rows = await actor_rows(fast, "counter")
        assert {key: row["state"] for key, row in rows.items()} == {
            key: {"count": ROUNDS, "applied": [f"{key}-{n}" for n in range(ROUNDS)]} for key in KEYS
        }

        async def acknowledged() -> bool:
            pending = [
                (await redis.xpending(stream_key(fast, "counter", p), "counter"))["pending"]
                for p in range(PARTITIONS)
            ]
            return pending == [0] * PARTITIONS

        await eventually(acknowledged, 10, "every entry acknowledged")

        async def relayed() -> bool:
            return bool(await redis.xlen(events_key(fast)) >= len(KEYS) * ROUNDS)

        await eventually(relayed, 20, "every event relayed")
        published: dict[str, list[int]] = {key: [] for key in KEYS}
        for _, fields in await redis.xrange(events_key(fast)):
            event = orjson.loads(fields[b"event"])
            published[event["key"]].append(event["count"])
        assert published == {key: list(range(1, ROUNDS + 1)) for key in KEYS}

        for worker in (second, third):
            worker.process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(w.process.wait(), 20) for w in (second, third)]
        assert codes == [0, 0]
        assert await holders(fast, redis) == [None] * PARTITIONS  # released on a graceful stop
