"""Group commit: turns of different actors ready at the same time commit in one statement,
each still under its own fencing and version check, and one turn PostgreSQL refuses does not
hold back the others of its batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from actors import runtime as runtime_module
from actors import store
from actors.base import StaleOwner, VersionConflict
from actors.batching import GroupCommit
from actors.runtime import Runtime
from actors.testing.counter import Counter
from config.settings import Settings
from deer import db
from deer.db import asyncpg_url
from tests.actors_support import actor_rows, eventually
from tests.actors_support import fast as fast
from tests.actors_support import redis as redis


async def test_what_arrives_during_a_flush_goes_in_the_next_batch() -> None:
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def flush(items: list[int]) -> Sequence[int | BaseException]:
        batches.append(items)
        await release.wait()
        return [ValueError(item) if item == 3 else item * 10 for item in items]

    group = GroupCommit[int, int](flush, limit=3)
    first = asyncio.create_task(group.submit(1))  # alone: flushed at once
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batches == [[1]]
    later = [asyncio.create_task(group.submit(n)) for n in range(2, 7)]
    await asyncio.sleep(0)
    assert group.waiting == 5
    release.set()
    assert await first == 10
    done = await asyncio.gather(*later, return_exceptions=True)
    assert batches == [[1], [2, 3, 4], [5, 6]]  # at most `limit` a batch
    assert [str(result) for result in done] == ["20", "3", "40", "50", "60"]
    assert isinstance(done[1], ValueError)


async def test_a_burst_of_submissions_starts_one_flusher() -> None:
    """Submissions made before the flusher started are its batch: however much room the
    concurrency leaves, they start no other task (a burst of asks or turns would otherwise
    make a task each, all but one finding nothing to flush)."""
    batches: list[list[int]] = []

    async def flush(items: list[int]) -> Sequence[int | BaseException]:
        batches.append(items)
        return [item * 10 for item in items]

    group = GroupCommit[int, int](flush, limit=100, concurrency=8)
    before = len(asyncio.all_tasks())
    burst = [asyncio.create_task(group.submit(n)) for n in range(50)]
    await asyncio.sleep(0)  # every submitter has run: the flusher has not yet
    assert len(asyncio.all_tasks()) - before == 50 + 1
    assert await asyncio.gather(*burst) == [n * 10 for n in range(50)]
    assert batches == [list(range(50))]
    later = asyncio.create_task(group.submit(50))  # the flusher done: a new one starts
    assert await later == 500
    assert batches[1:] == [[50]]


async def test_a_submission_right_after_a_batch_is_flushed() -> None:
    """The submitter woken by its batch submits again at once: the flusher that just finished
    must already have made room (a done callback would come a turn of the loop too late, and
    the new item would wait for ever)."""

    async def flush(items: list[int]) -> Sequence[int | BaseException]:
        await asyncio.sleep(0)
        return [item * 10 for item in items]

    group = GroupCommit[int, int](flush, limit=10)  # one flush at a time
    async with asyncio.timeout(2.0):  # not `wait_for`: its own task would hide the race
        for n in range(20):
            assert await group.submit(n) == n * 10
    await group.close()


async def test_batches_in_flight_up_to_the_concurrency() -> None:
    """With room for two flushes, a submission does not wait behind the one in flight; with
    both in flight, what arrives waits and goes in one batch after the first to finish."""
    batches: list[list[int]] = []
    releases = [asyncio.Event() for _ in range(3)]

    async def flush(items: list[int]) -> Sequence[int | BaseException]:
        index = len(batches)
        batches.append(items)
        await releases[index].wait()
        return [item * 10 for item in items]

    group = GroupCommit[int, int](flush, limit=10, concurrency=2)
    first = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    second = asyncio.create_task(group.submit(2))  # room: a second batch at once
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert batches == [[1], [2]]
    later = [asyncio.create_task(group.submit(n)) for n in (3, 4, 5)]
    await asyncio.sleep(0)
    assert group.waiting == 3  # both in flight: they wait
    releases[1].set()  # the second finishes first: it takes what waits
    assert await second == 20
    await asyncio.sleep(0)
    assert batches == [[1], [2], [3, 4, 5]]
    releases[2].set()
    assert await asyncio.gather(*later) == [30, 40, 50]
    assert not first.done()
    releases[0].set()
    assert await first == 10
    await group.close()


async def test_one_statement_answers_each_turn(fast: Settings) -> None:
    """Written, stale owner, stale copy: per turn, in one statement; events only if written."""
    assert await store.record_token("counter", 0, 5) == 5
    assert await store.record_token("counter", 1, 7) == 7

    def turn(partition: int, token: int, key: str, version: int) -> store.Turn:
        events = [{"key": key, "n": n} for n in range(2)]
        return store.Turn(partition, token, key, {"at": key}, "9-0", "c", None, version, events)

    assert await store.commit("counter", turn(0, 5, "old", 0)) == 1
    results = await store.commit_turns(
        "counter",
        [
            turn(0, 5, "new", 0),  # first commit of an actor
            turn(1, 6, "fenced", 0),  # a token partition 1 no longer has
            turn(0, 5, "old", 1),  # at the version read: written
            turn(0, 5, "copy", 3),  # never committed, yet read at version 3
        ],
    )
    assert [type(result) if isinstance(result, Exception) else result for result in results] == [
        1,
        StaleOwner,
        2,
        VersionConflict,
    ]
    rows = await actor_rows(fast, "counter")
    assert {key: (row["state"], row["version"]) for key, row in rows.items()} == {
        "new": ({"at": "new"}, 1),
        "old": ({"at": "old"}, 2),
    }
    assert fast.database_url is not None
    connection = await asyncpg.connect(asyncpg_url(fast.database_url.get_secret_value()))
    try:
        events = await connection.fetch("SELECT key, event::text FROM actor_outbox ORDER BY id")
    finally:
        await connection.close()
    assert [(row["key"], orjson.loads(row["event"])) for row in events] == [
        ("old", {"key": "old", "n": 0}),
        ("old", {"key": "old", "n": 1}),
        ("new", {"key": "new", "n": 0}),
        ("new", {"key": "new", "n": 1}),
        ("old", {"key": "old", "n": 0}),
        ("old", {"key": "old", "n": 1}),
    ]


async def test_a_turn_postgresql_refuses_does_not_hold_back_its_batch(
    fast: Settings, redis: Redis
) -> None:
    """A NUL character has no place in jsonb: that turn's commit fails (and is retried,
    holding its own mailbox only); the turns committed in the same batch go through."""
    host = Runtime(fast, redis, [Counter()], relay=False)
    await host.start()
    keys = [f"k{n}" for n in range(6)]
    refused: asyncio.Task[object] | None = None
    try:
        first = [host.ask("counter", key, {"id": f"{key}-1", "sleep": 0.1}) for key in keys]
        assert await asyncio.gather(*first) == [1] * 6
        assert host.stats()["counter"]["commits"] < 6  # turns ready together shared statements

        refused = asyncio.create_task(host.ask("counter", "k2", {"id": "bad\0", "sleep": 0.1}))
        second = [
            host.ask("counter", key, {"id": f"{key}-2", "sleep": 0.1})
            for key in keys
            if key != "k2"
        ]
        assert await asyncio.gather(*second) == [2] * 5

        async def retried() -> bool:
            return host.hosts["counter"].in_flight == 1  # k2's turn, still retrying

        await eventually(retried, 5, "only the refused turn left")
        rows = await actor_rows(fast, "counter")
        assert {key: row["state"]["applied"] for key, row in rows.items()} == {
            key: [f"{key}-1"] if key == "k2" else [f"{key}-1", f"{key}-2"] for key in keys
        }
    finally:
        await host.close(grace=0.1)
        if refused is not None:
            refused.cancel()
            await asyncio.gather(refused, return_exceptions=True)


async def test_idle_waits_for_the_batches_in_flight_within_its_bound() -> None:
    """`idle` returns at once when nothing is flushed, when the last batch in flight is done,
    and, with a batch that takes long, after its bound (a reader never waits out a backlog)."""
    release = asyncio.Event()

    async def flush(items: list[int]) -> Sequence[int | BaseException]:
        await release.wait()
        return items

    group = GroupCommit[int, int](flush, limit=10)
    async with asyncio.timeout(1.0):
        await group.idle(60.0)  # nothing in flight
    submitted = asyncio.create_task(group.submit(1))
    await asyncio.sleep(0)
    waiting = asyncio.create_task(group.idle(60.0))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    release.set()
    async with asyncio.timeout(1.0):
        await waiting
        assert await submitted == 1

    release.clear()
    stuck = asyncio.create_task(group.submit(2))
    await asyncio.sleep(0)
    began = asyncio.get_running_loop().time()
    await group.idle(0.05)
    assert 0.04 <= asyncio.get_running_loop().time() - began < 1.0
    assert not stuck.done()
    release.set()
    assert await stuck == 2
    await group.close()


async def test_held_connections_are_kept_reused_and_replaced(fast: Settings) -> None:
    """The runtime's batches run on connections it keeps (no pool round trip each): a refused
    statement keeps its connection, a killed or cancelled one is given back and replaced, and
    no more than `keep` stay held once the statements are done."""
    pool = db.Database(fast)
    await pool.open()
    held = store.HeldConnections(keep=1)
    assert fast.database_url is not None
    admin = await asyncpg.connect(asyncpg_url(fast.database_url.get_secret_value()))

    async def backend() -> int:
        rows = await held.fetch("SELECT pg_backend_pid() AS pid")
        return int(rows[0]["pid"])

    def in_use() -> int:
        found = pool.pool()
        assert found is not None
        return int(found.get_size()) - int(found.get_idle_size())

    try:
        first = await backend()
        assert await backend() == first  # kept between statements
        baseline = in_use()
        with pytest.raises(asyncpg.DivisionByZeroError):
            await held.fetch("SELECT 1 / 0")
        assert await backend() == first  # refused by PostgreSQL: the connection is sound

        await admin.execute("SELECT pg_terminate_backend($1)", first)
        # Killed: it is not used again. The next statement runs on a new connection, or fails
        # if asyncpg has not read the server's goodbye yet (a PostgreSQL error, a closed
        # connection or an internal state error, depending on when), and the one after does.
        try:
            replaced = await backend()
        except Exception:
            replaced = await backend()
        assert replaced != first

        slow = asyncio.create_task(held.fetch("SELECT pg_sleep(10)"))
        await asyncio.sleep(0.2)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
        async with asyncio.timeout(5):
            assert await backend() > 0  # not "another operation is in progress"

        together = [held.fetch("SELECT pg_sleep(0.1)") for _ in range(3)]
        await asyncio.gather(*together)
        assert in_use() == baseline  # three taken at once, one kept
        await held.close()
        assert in_use() == baseline - 1
    finally:
        await held.close()
        await admin.close()
        await pool.close()


async def test_a_read_waits_for_the_commit_of_the_turns_it_brought(
    fast: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a read that brought entries, the reader reads again once their turns are
    committed (within `READ_HOLD`), not while the commit runs: what arrives meanwhile comes in
    one read and one batch after it. Its own turns reach the commit before it looks."""
    monkeypatch.setattr(runtime_module, "READ_HOLD", 5.0)  # only the commit ends the hold
    host = Runtime(fast, redis, [Counter()], relay=False)
    await host.start()
    kind = host.hosts["counter"]
    keys = [f"k{n}" for n in range(20)]
    try:
        # Every actor in memory first: a turn waiting for its load is no commit yet. Then one
        # command each: an actor's next command commits without a read (its mailbox has it).
        assert await asyncio.gather(*(host.ask("counter", key, {"id": "0"}) for key in keys))
        reads_in_flight = 0
        seen_by_commits: list[int] = []
        read, flush = kind._reader.execute, kind._commits._flush

        async def counted_read(*args: object) -> object:
            nonlocal reads_in_flight
            reads_in_flight += 1
            try:
                return await read(*args)
            finally:
                reads_in_flight -= 1

        async def slow_commit(turns: list[store.Turn]) -> Sequence[int | BaseException]:
            seen_by_commits.append(reads_in_flight)
            await asyncio.sleep(0.05)  # a read sent now would be answered during the commit
            return await flush(turns)

        monkeypatch.setattr(kind._reader, "execute", counted_read)
        monkeypatch.setattr(kind._commits, "_flush", slow_commit)
        asks = [host.ask("counter", key, {"id": "1"}) for key in keys]
        assert await asyncio.gather(*asks) == [2] * len(keys)
        assert seen_by_commits and set(seen_by_commits) == {0}
        assert len(seen_by_commits) < len(asks)  # the asks shared reads and commits
    finally:
        await host.close(grace=0.1)
