"""Real worker processes share the partitions: one joins, one is killed with SIGKILL mid-run;
three share them, a fourth joins and one leaves, while commands flow; every command is still
applied exactly once, in send order per key (counted in PostgreSQL); a command that kills
every process handling it ends in the dead-letter stream.
Short leases: 1 s, renewed every 0.3 s (shorter where said)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from actors.base import CommandResult
from actors.leases import lease_key
from actors.outbox import events_key
from actors.runtime import Runtime, dead_letter_key, starts_key, stream_key
from actors.testing.counter import CRASH_EXIT_CODE
from config.settings import Settings
from deer import cache
from tests.actors_support import actor_rows, eventually, pending_entries
from tests.actors_support.workers import Worker, spawn
from tests.actors_support.workers import workers as workers

PARTITIONS = 8
KEYS = [f"k{index}" for index in range(12)]
ROUNDS = 25
JOIN_AT, KILL_AT = 6, 14

pytestmark = pytest.mark.slow


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
                await pending_entries(redis, stream_key(fast, "counter", p))
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


async def test_a_fourth_joining_and_one_leaving_rebalance_under_traffic(
    settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    """Three workers share the partitions while commands flow; a fourth joins and takes its
    share, then one of the first three stops (SIGTERM) and hands its share over: every
    command is applied exactly once, in send order per key."""
    fast = settings.with_values(
        actor_partitions=PARTITIONS, actor_lease_ttl=1.0, actor_lease_renew=0.3
    )
    async with cache.redis_client(fast) as redis:
        sender = Runtime(fast, redis)
        trio = [await spawn(fast, tmp_path, workers) for _ in range(3)]
        sent = 0
        sending = True

        async def send() -> None:
            nonlocal sent
            while sending:
                for key in KEYS:
                    await sender.tell("counter", key, {"id": f"{key}-{sent}", "sleep": 0.01})
                sent += 1
                await asyncio.sleep(0.05)

        async def spread_over(processes: set[str]) -> None:
            async def spread() -> bool:
                held = await holders(fast, redis)
                share = -(-PARTITIONS // len(processes))  # ceil
                return set(held) == processes and all(
                    0 < held.count(process) <= share for process in processes
                )

            await eventually(spread, 15, f"the partitions spread over {len(processes)} workers")

        sending_task = asyncio.create_task(send())
        try:
            await spread_over({worker.process_id for worker in trio})
            fourth = await spawn(fast, tmp_path, workers)
            await spread_over({worker.process_id for worker in [*trio, fourth]})
            joined_at = sent
            leaver = trio[0]
            leaver.process.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(leaver.process.wait(), 20) == 0
            stayed = [*trio[1:], fourth]
            await spread_over({worker.process_id for worker in stayed})
            left_at = sent
            await asyncio.sleep(0.3)  # a few more rounds after the handover
        finally:
            sending = False
            await sending_task
        assert 0 < joined_at < left_at < sent  # commands flowed through both changes

        async def all_applied() -> bool:
            rows = await actor_rows(fast, "counter")
            return sum(row["state"]["count"] for row in rows.values()) >= len(KEYS) * sent

        await eventually(all_applied, 40, "every command applied")
        rows = await actor_rows(fast, "counter")
        assert {key: row["state"] for key, row in rows.items()} == {
            key: {"count": sent, "applied": [f"{key}-{n}" for n in range(sent)]} for key in KEYS
        }

        for worker in stayed:
            worker.process.send_signal(signal.SIGTERM)
        codes = [await asyncio.wait_for(w.process.wait(), 20) for w in stayed]
        assert codes == [0, 0, 0]
        assert await holders(fast, redis) == [None] * PARTITIONS


async def test_a_command_that_kills_its_process_ends_in_dead_letters(
    settings: Settings, tmp_path: Path, workers: list[Worker]
) -> None:
    """Each worker dies (`os._exit`) handling the poison: in-process attempts never reach the
    limit, Redis's delivery count does. The actor's next command is then applied once."""
    fast = settings.with_values(
        actor_partitions=1, actor_lease_ttl=0.6, actor_lease_renew=0.2, actor_max_attempts=2
    )
    async with cache.redis_client(fast) as redis:
        sender = Runtime(fast, redis)
        poison = await sender.tell("counter", "42", {"id": "poison", "crash": True})
        after = await sender.tell("counter", "42", {"id": "after"})
        codes = []
        for _ in range(fast.actor_max_attempts):  # deliveries 1 and 2 (the second re-read)
            worker = await spawn(fast, tmp_path, workers)
            codes.append(await asyncio.wait_for(worker.process.wait(), 30))
        assert codes == [CRASH_EXIT_CODE] * fast.actor_max_attempts

        last = await spawn(fast, tmp_path, workers)  # delivery 3: not handled, a dead letter

        async def carried_on() -> bool:
            return await sender.outcome(after) is not None

        await eventually(carried_on, 20, "the command after the poison applied")
        error = "delivered 3 times, never completed"
        assert await sender.outcome(poison) == CommandResult(poison, False, None, error)
        assert await sender.outcome(after) == CommandResult(after, True, 1, None)
        letters = await redis.xrange(dead_letter_key(fast, "counter"))
        assert len(letters) == 1
        fields = {name.decode(): value.decode() for name, value in letters[0][1].items()}
        assert fields == {
            "id": poison,
            "key": "42",
            "body": '{"id":"poison","crash":true}',
            "message_id": fields["message_id"],
            "partition": "0",
            "error": error,
            "attempts": "0",
            "deliveries": "3",
        }
        rows = await actor_rows(fast, "counter")
        assert rows["42"]["state"] == {"count": 1, "applied": ["after"]}
        assert rows["42"]["last_message_id"] > fields["message_id"]
        assert await redis.hlen(starts_key(fast, "counter", 0)) == 0  # counted starts cleared

        last.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(last.process.wait(), 20) == 0
