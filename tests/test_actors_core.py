"""The actor runtime in one process: asks, exactly-once commits, redelivery, dead letters,
fencing, rebalancing. Real PostgreSQL and Redis; short leases (`FAST`)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from actors import store
from actors.base import (
    AskTimeout,
    CommandFailed,
    CommandResult,
    Overloaded,
    StaleOwner,
    partition_of,
)
from actors.leases import Leases, lease_key
from actors.models import ActorOutbox
from actors.outbox import MARKER_TTL, OutboxRelay, events_key
from actors.runtime import (
    Entry,
    KindHost,
    Runtime,
    dead_letter_key,
    decode_results,
    encode_result,
    stream_key,
)
from actors.testing.counter import Counter
from config.settings import Settings
from deer.cache import key
from deer.errors import Conflict
from tests.actors_support import actor_rows, eventually, pending_entries
from tests.actors_support import fast as fast
from tests.actors_support import redis as redis


async def started(runtime: Runtime) -> Runtime:
    await runtime.start()
    return runtime


def test_partition_of_is_a_stable_hash() -> None:
    assert [partition_of(key, 16) for key in ("42", "cart-1", "k0")] == [8, 4, 15]
    assert partition_of("42", 1) == 0


async def test_asks_apply_each_command_once_in_order(fast: Settings, redis: Redis) -> None:
    host = await started(Runtime(fast, redis, [Counter()]))
    sender = await started(Runtime(fast, redis))  # replies come back to the asking process
    try:

        async def send(key: str) -> list[Any]:
            return [await sender.ask("counter", key, {"id": f"{key}-{n}"}) for n in range(10)]

        keys = [f"k{index}" for index in range(6)]
        replies = await asyncio.gather(*(send(key) for key in keys))
        assert replies == [list(range(1, 11))] * len(keys)

        rows = await actor_rows(fast, "counter")
        assert {key: row["state"] for key, row in rows.items()} == {
            key: {"count": 10, "applied": [f"{key}-{n}" for n in range(10)]} for key in keys
        }
        assert {row["version"] for row in rows.values()} == {10}

        await host.hosts["counter"].tick()  # trims what was acknowledged
        lengths = [await redis.xlen(stream_key(fast, "counter", p)) for p in range(4)]
        assert lengths == [0, 0, 0, 0]
        assert host.stats()["counter"]["handled"] == 60
        assert host.stats()["counter"]["redelivered"] == 0
    finally:
        await sender.close()
        await host.close()


async def joined(host: KindHost) -> KindHost:
    """Take a first share of the partitions and their streams over, as the reader would."""
    await host.prepare()
    for partition, held in list(host._joining.items()):
        await host._join(partition, held)
    return host


async def test_a_new_owner_fences_off_the_old_owners_reads(
    fast: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A is blocked reading when its leases expire (a pause) and B takes the partitions over:
    A's read, and any later one, is answered NOGROUP and takes nothing. B first reads what A
    had read and left unacknowledged, in stream order, then the new entries, each once."""
    slow = fast.with_values(actor_lease_ttl=10.0, actor_lease_renew=3.0)  # reads block 1 s
    a = Runtime(slow, redis, [Counter()], process_id="a", relay=False).hosts["counter"]
    b = Runtime(slow, redis, [Counter()], process_id="b", relay=False).hosts["counter"]
    sender = await started(Runtime(slow, redis))
    try:
        await joined(a)  # the hosts' loops are not started: the test drives the readers
        assert a.reading == set(range(slow.actor_partitions))
        read_by_a: list[Entry] = []
        monkeypatch.setattr(a, "_route", read_by_a.append)  # read, never handled
        first = [await sender.tell("counter", "k", {"id": f"first-{n}"}) for n in range(2)]
        assert await a._read_once() == 2
        blocked = asyncio.create_task(a._read_once())
        await asyncio.sleep(0.2)
        # A is paused past its leases: they expire, its heartbeat too.
        leases = [lease_key(slow, "counter", p) for p in range(slow.actor_partitions)]
        await redis.delete(*leases, a.leases.members)
        await joined(b)
        assert b.reading == set(range(slow.actor_partitions))
        with pytest.raises(ResponseError, match="NOGROUP"):
            await asyncio.wait_for(blocked, 5)
        later = await sender.tell("counter", "k", {"id": "later"})
        with pytest.raises(ResponseError, match="NOGROUP"):
            await a._read_once()
        await a._check_groups()  # what A's reader does after a NOGROUP
        assert a.owned == {} and a.reading == set()
        assert [entry.command_id for entry in read_by_a] == first

        routed = 0
        while routed < 3:
            routed += await b._read_once()
        assert routed == 3

        async def applied() -> bool:
            return all([await sender.outcome(c) for c in [*first, later]])

        await eventually(applied, 10, "every command applied by B")
        rows = await actor_rows(slow, "counter")
        assert rows["k"]["state"] == {"count": 3, "applied": ["first-0", "first-1", "later"]}
        assert b.stats.read_again == 2  # A's two, read again
        stream = stream_key(slow, "counter", partition_of("k", slow.actor_partitions))
        assert [g["name"].decode() for g in await redis.xinfo_groups(stream)] == [b.group]

        async def acknowledged() -> bool:
            return await pending_entries(redis, stream) == 0

        await eventually(acknowledged, 10, "B acknowledged every entry")
    finally:
        await b.close(1.0)
        await a.close(1.0)
        await sender.close()


async def test_domain_error_refuses_the_command_and_reaches_the_asker(
    fast: Settings, redis: Redis
) -> None:
    host = await started(Runtime(fast, redis, [Counter()]))
    try:
        assert await host.ask("counter", "r", {"id": "r-1"}) == 1
        with pytest.raises(Conflict) as refused:
            await host.ask("counter", "r", {"id": "r-2", "refuse": "too_many"})
        assert refused.value.code == "too_many"
        assert refused.value.details == {"at": 1}
        assert await host.ask("counter", "r", {"id": "r-3"}) == 2  # carries on, not retried
        rows = await actor_rows(fast, "counter")
        assert rows["r"]["state"]["applied"] == ["r-1", "r-3"]
        assert host.stats()["counter"]["dead_letters"] == 0
        assert await redis.xlen(dead_letter_key(fast, "counter")) == 0
    finally:
        await host.close()


async def test_redelivered_entry_is_acknowledged_not_applied_again(
    fast: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process commits, then dies before its ack: the next owner acks without applying."""
    committed = asyncio.Event()

    async def die_before_ack(self: KindHost, *args: Any) -> None:
        committed.set()
        await asyncio.Event().wait()  # hangs until the runtime is closed

    monkeypatch.setattr(KindHost, "_finish", die_before_ack)
    first = await started(Runtime(fast, redis, [Counter()], process_id="first"))
    sender = await started(Runtime(fast, redis))
    try:
        command_id = await sender.tell("counter", "42", {"id": "only"})
        await asyncio.wait_for(committed.wait(), 10)
        await first.close(grace=0.1)
        partition = partition_of("42", 4)
        assert await pending_entries(redis, stream_key(fast, "counter", partition)) == 1
        assert await sender.outcome(command_id) is None

        monkeypatch.undo()
        second = await started(Runtime(fast, redis, [Counter()], process_id="second"))
        try:

            async def answered() -> bool:
                return await sender.outcome(command_id) is not None

            await eventually(answered, 10, "the outcome stored by the next owner")
            assert await sender.outcome(command_id) == CommandResult(command_id, True, 1, None)
            assert second.stats()["counter"]["redelivered"] == 1
            assert second.stats()["counter"]["handled"] == 0
            assert await pending_entries(redis, stream_key(fast, "counter", partition)) == 0
        finally:
            await second.close()
        rows = await actor_rows(fast, "counter")
        assert rows["42"]["state"] == {"count": 1, "applied": ["only"]}
        assert rows["42"]["version"] == 1
    finally:
        await sender.close()


async def test_poison_message_goes_to_dead_letters_and_actor_carries_on(
    fast: Settings, redis: Redis
) -> None:
    host = await started(Runtime(fast, redis, [Counter()]))
    try:
        with pytest.raises(CommandFailed) as failed:
            await host.ask("counter", "42", {"id": "bad", "fail": True})
        assert failed.value.error == "Poison: poison command bad"
        assert await host.ask("counter", "42", {"id": "good"}) == 1

        letters = await redis.xrange(dead_letter_key(fast, "counter"))
        assert len(letters) == 1
        fields = {name.decode(): value.decode() for name, value in letters[0][1].items()}
        assert fields["id"] == failed.value.command_id
        assert fields["key"] == "42"
        assert fields["error"] == "Poison: poison command bad"
        assert fields["attempts"] == "2"
        assert await host.outcome(failed.value.command_id) == CommandResult(
            failed.value.command_id, False, None, "Poison: poison command bad"
        )
        rows = await actor_rows(fast, "counter")
        assert rows["42"]["state"] == {"count": 1, "applied": ["good"]}
        assert rows["42"]["version"] == 2  # the dead letter advanced the actor, unchanged
        assert host.stats()["counter"]["dead_letters"] == 1
    finally:
        await host.close()


async def test_an_entry_that_is_no_command_is_set_aside(fast: Settings, redis: Redis) -> None:
    """Something that is no command in a partition stream (fields missing, a body that is not
    JSON) goes to the dead-letter stream, acknowledged, and the commands around it go on."""
    host = await started(Runtime(fast, redis, [Counter()], process_id="owner"))
    stream = stream_key(fast, "counter", partition_of("k", fast.actor_partitions))
    try:
        assert await host.ask("counter", "k", {"id": "before"}) == 1
        await redis.xadd(stream, {"junk": "x"})
        await redis.xadd(stream, {"id": "c", "key": "k", "body": "{not json", "reply": ""})
        assert await host.ask("counter", "k", {"id": "after"}) == 2

        async def both_set_aside() -> bool:
            return await redis.xlen(dead_letter_key(fast, "counter")) == 2

        await eventually(both_set_aside, 5, "two dead letters")
        letters = [
            {name.decode(): value.decode() for name, value in fields.items()}
            for _, fields in await redis.xrange(dead_letter_key(fast, "counter"))
        ]
        assert [letter["error"].split(":")[:2] for letter in letters] == [
            ["unreadable entry", " KeyError"],
            ["unreadable entry", " JSONDecodeError"],
        ]
        assert orjson.loads(letters[0]["fields"]) == {"junk": "x"}
        assert orjson.loads(letters[1]["fields"])["body"] == "{not json"
        group = host.hosts["counter"].group
        assert (await redis.xpending(stream, group))["pending"] == 0
        rows = await actor_rows(fast, "counter")
        assert rows["k"]["state"]["applied"] == ["before", "after"]
        assert host.stats()["counter"]["dead_letters"] == 2
    finally:
        await host.close()


async def test_streams_lost_under_a_running_owner_are_taken_over_again(
    fast: Settings, redis: Redis
) -> None:
    """Redis loses the partition streams (and with them the groups) while the owner still holds
    its leases: its reads fail, it makes its group again on each, and commands flow again."""
    host = await started(Runtime(fast, redis, [Counter()], process_id="owner"))
    sender = await started(Runtime(fast, redis))
    try:
        assert await sender.ask("counter", "k", {"id": "before"}, timeout=10) == 1
        streams = [stream_key(fast, "counter", p) for p in range(fast.actor_partitions)]
        await redis.delete(*streams)
        assert await sender.ask("counter", "k", {"id": "after"}, timeout=10) == 2
        group = host.hosts["counter"].group
        for stream in streams:
            assert [g["name"].decode() for g in await redis.xinfo_groups(stream)] == [group]
        rows = await actor_rows(fast, "counter")
        assert rows["k"]["state"] == {"count": 2, "applied": ["before", "after"]}
    finally:
        await sender.close()
        await host.close()


async def test_entries_of_a_read_whose_reply_was_lost_are_read_again(
    fast: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis delivered a read's entries but its reply never arrived (a connection broken
    mid-read): they are pending in the owner's group, where no `>` read finds them again. The
    reader reads its pending entries before anything new: each is applied once, and each
    actor's later commands after it."""
    host = await started(Runtime(fast, redis, [Counter()], process_id="owner"))
    kind = host.hosts["counter"]
    read = kind._reader.execute
    lost: list[int] = []  # entries in the reply that was lost

    async def losing_read(*args: Any) -> Any:
        found = await read(*args)
        if found and not lost and args[-1] == ">":
            read_out = found.items() if isinstance(found, dict) else found
            lost.append(sum(len(entries) for _, entries in read_out))
            raise RedisConnectionError("connection lost after Redis answered")
        return found

    async def reply_lost() -> bool:
        return bool(lost)

    monkeypatch.setattr(kind._reader, "execute", losing_read)
    keys = [f"k{n}" for n in range(8)]
    try:
        first = [
            asyncio.create_task(host.ask("counter", key, {"id": f"{key}-1"}, timeout=10))
            for key in keys
        ]
        await eventually(reply_lost, 5, "a read whose reply is lost")
        second = [host.ask("counter", key, {"id": f"{key}-2"}, timeout=10) for key in keys]
        assert await asyncio.gather(*first) == [1] * len(keys)
        assert await asyncio.gather(*second) == [2] * len(keys)
        rows = await actor_rows(fast, "counter")
        assert {key: row["state"]["applied"] for key, row in rows.items()} == {
            key: [f"{key}-1", f"{key}-2"] for key in keys
        }
        assert kind.stats.read_again == lost[0] > 0  # counted as redeliveries, read once more
        assert host.stats()["counter"]["handled"] == 2 * len(keys)
    finally:
        await host.close()


async def test_ask_timeout_keeps_the_command(fast: Settings, redis: Redis) -> None:
    sender = await started(Runtime(fast, redis))  # nobody hosts counters yet
    try:
        with pytest.raises(AskTimeout) as timed_out:
            await sender.ask("counter", "7", {"id": "late"}, timeout=0.2)
        command_id = timed_out.value.command_id
        assert await sender.outcome(command_id) is None

        host = await started(Runtime(fast, redis, [Counter()]))
        try:

            async def answered() -> bool:
                return await sender.outcome(command_id) is not None

            await eventually(answered, 10, "the late command handled")
            assert await sender.outcome(command_id) == CommandResult(command_id, True, 1, None)
        finally:
            await host.close()
    finally:
        await sender.close()


async def test_a_full_partition_refuses_new_commands(fast: Settings, redis: Redis) -> None:
    """Nobody hosts the counters: the partition's stream fills up to its limit, then `tell` and
    `ask` refuse (`Overloaded`, 503 `actors_overloaded`) and send nothing. Once a host worked
    the backlog off and trimmed it, commands go through again."""
    limited = fast.with_values(actor_partitions=1, actor_max_stream_length=3)
    sender = await started(Runtime(limited, redis))
    try:
        sent = [await sender.tell("counter", "42", {"id": f"c{n}"}) for n in range(3)]
        with pytest.raises(Overloaded) as refused:
            await sender.tell("counter", "42", {"id": "c3"})
        assert (refused.value.kind, refused.value.code) == ("unavailable", "actors_overloaded")
        assert refused.value.details == {"actor_kind": "counter", "partition": 0}
        with pytest.raises(Overloaded):
            await sender.ask("counter", "7", {"id": "a"})
        assert sender.replies.waiting == {}
        assert await redis.xlen(stream_key(limited, "counter", 0)) == 3

        host = await started(Runtime(limited, redis, [Counter()], relay=False))
        try:

            async def worked_off() -> bool:
                return all([await sender.outcome(command_id) for command_id in sent])

            await eventually(worked_off, 10, "the backlog applied")
            await host.hosts["counter"].tick()  # trims what was acknowledged
            assert await sender.ask("counter", "42", {"id": "c3"}) == 4
        finally:
            await host.close()
    finally:
        await sender.close()


async def test_commands_sent_together_are_appended_in_one_script_run(
    fast: Settings, redis: Redis
) -> None:
    """Tells and asks started while others are on their way go to Redis together: one script
    run, not one each. Each command is appended in the order sent, and a full partition
    refuses only its own commands of the batch."""
    limited = fast.with_values(actor_partitions=2, actor_max_stream_length=3)
    first = next(str(n) for n in range(100) if partition_of(str(n), 2) == 0)
    second = next(str(n) for n in range(100) if partition_of(str(n), 2) == 1)
    sender = await started(Runtime(limited, redis))
    script = sender._append
    runs: list[int] = []

    class Counted:
        async def __call__(self, keys: list[str], args: list[Any]) -> Any:
            runs.append(len(keys))
            return await script(keys, args)

        async def close(self) -> None:
            await script.close()

    sender._append = Counted()  # type: ignore[assignment]
    try:
        sent = await asyncio.gather(
            *(sender.tell("counter", first, {"id": f"a{n}"}) for n in range(5)),
            *(sender.tell("counter", second, {"id": f"b{n}"}) for n in range(2)),
            return_exceptions=True,
        )
        assert runs == [7]
        assert [type(result) for result in sent] == [str] * 3 + [Overloaded] * 2 + [str] * 2
        assert [refused.details for refused in sent[3:5]] == [  # type: ignore[union-attr]
            {"actor_kind": "counter", "partition": 0}
        ] * 2
        for partition, ids, command_ids in (
            (0, ["a0", "a1", "a2"], sent[:3]),
            (1, ["b0", "b1"], sent[5:]),
        ):
            entries = await redis.xrange(stream_key(limited, "counter", partition))
            assert [orjson.loads(fields[b"body"])["id"] for _, fields in entries] == ids
            assert [fields[b"id"].decode() for _, fields in entries] == command_ids
    finally:
        await sender.close()


async def test_a_command_cancelled_before_its_batch_left_is_not_appended(
    fast: Settings, redis: Redis
) -> None:
    """A caller cancelled (a client gone) while its command waits for its batch sends nothing;
    the commands sent with it are appended."""
    limited = fast.with_values(actor_partitions=1)
    sender = await started(Runtime(limited, redis))
    try:
        tells = [
            asyncio.create_task(sender.tell("counter", "7", {"id": f"c{n}"})) for n in range(3)
        ]
        await asyncio.sleep(0)  # each has submitted its command; the batch has not left
        tells[1].cancel()
        sent = await asyncio.gather(*tells, return_exceptions=True)
        assert isinstance(sent[1], asyncio.CancelledError)
        entries = await redis.xrange(stream_key(limited, "counter", 0))
        assert [orjson.loads(fields[b"body"])["id"] for _, fields in entries] == ["c0", "c2"]
        assert [fields[b"id"].decode() for _, fields in entries] == [sent[0], sent[2]]
    finally:
        await sender.close()


async def test_stale_owner_cannot_commit(fast: Settings, redis: Redis) -> None:
    """A's lease expires (a pause), B acquires: A's commit is refused, B's succeeds."""
    short = fast.with_values(actor_lease_ttl=0.2, actor_lease_renew=0.1)
    owner_a = Leases(short, redis, "counter", "a")
    owner_b = Leases(short, redis, "counter", "b")

    token_a = await owner_a.acquire(0)
    assert token_a == 1
    assert await owner_b.acquire(0) is None  # held: no token handed out
    fence_a = await store.record_token("counter", 0, token_a)
    assert fence_a == 1

    def turn(token: int, by: str, message_id: str, version: int) -> store.Turn:
        return store.Turn(0, token, "k", {"by": by}, message_id, "c", None, version)

    assert await store.commit("counter", turn(fence_a, "a", "1-0", version=0)) == 1

    async def expired() -> bool:
        return not await redis.exists(lease_key(short, "counter", 0))

    await eventually(expired, 5, "A's lease expired")
    token_b = await owner_b.acquire(0)
    assert token_b == 2
    fence_b = await store.record_token("counter", 0, token_b)
    assert fence_b == 2

    with pytest.raises(StaleOwner):
        await store.commit("counter", turn(fence_a, "a2", "2-0", version=1))
    assert await owner_a.renew(0, token_a) is False
    rows = await actor_rows(short, "counter")
    assert rows["k"] == {"state": {"by": "a"}, "last_message_id": "1-0", "version": 1}

    assert await store.commit("counter", turn(fence_b, "b", "2-0", version=1)) == 2
    rows = await actor_rows(short, "counter")
    assert rows["k"] == {"state": {"by": "b"}, "last_message_id": "2-0", "version": 2}
    # Redis lost its counter (a restart without persistence): the fence still grows.
    assert await store.record_token("counter", 0, 1) == 3


async def test_a_commit_waits_for_a_token_being_recorded(fast: Settings) -> None:
    """A new owner's token not yet committed: the old owner's commit waits for it, then is
    refused; it cannot slip in with the snapshot it started with."""
    fence_a = await store.record_token("counter", 1, 1)
    state = {"by": "a"}
    first = store.Turn(1, fence_a, "w", state, "1-0", "c1", None, 0)
    assert await store.commit("counter", first) == 1
    assert fast.database_url is not None
    taking_over = await asyncpg.connect(fast.database_url.get_secret_value())
    try:
        async with taking_over.transaction():
            recorded = await taking_over.fetchval(
                "SELECT deer_record_token($1, $2, $3)", "counter", 1, 2
            )
            assert recorded == fence_a + 1
            late = asyncio.create_task(
                store.commit("counter", store.Turn(1, fence_a, "w", state, "2-0", "c2", None, 1))
            )
            await asyncio.sleep(0.3)
            assert not late.done()  # held by the fencing lock of the token being recorded
    finally:
        await taking_over.close()
    with pytest.raises(StaleOwner):
        await late
    rows = await actor_rows(fast, "counter")
    assert rows["w"] == {"state": {"by": "a"}, "last_message_id": "1-0", "version": 1}


async def test_partitions_rebalance_when_processes_join_and_leave(
    fast: Settings, redis: Redis
) -> None:
    one = await started(Runtime(fast, redis, [Counter()], process_id="one"))
    two: Runtime | None = None
    try:
        assert set(one.hosts["counter"].owned) == {0, 1, 2, 3}
        two = await started(Runtime(fast, redis, [Counter()], process_id="two"))
        pair = (one.hosts["counter"], two.hosts["counter"])

        async def shared() -> bool:
            return [len(host.reading) for host in pair] == [2, 2]

        await eventually(shared, 10, "two processes with two partitions each")
        assert set(pair[0].owned) | set(pair[1].owned) == {0, 1, 2, 3}
        replies = [await two.ask("counter", f"k{n}", {"id": f"c{n}"}) for n in range(8)]
        assert replies == [1] * 8

        await two.close()
        two = None

        async def alone() -> bool:
            return len(pair[0].reading) == 4

        await eventually(alone, 10, "the remaining process owns every partition")
        replies = [await one.ask("counter", f"k{n}", {"id": f"d{n}"}) for n in range(8)]
        assert replies == [2] * 8
    finally:
        if two is not None:
            await two.close()
        await one.close()


async def test_idle_actors_leave_memory_and_reload_their_state(
    fast: Settings, redis: Redis
) -> None:
    host = await started(Runtime(fast.with_values(actor_idle_timeout=0.05), redis, [Counter()]))
    try:
        assert [await host.ask("counter", f"k{n}", {"id": "a"}) for n in range(3)] == [1, 1, 1]
        assert host.stats()["counter"]["actors_in_memory"] == 3
        await asyncio.sleep(0.1)
        await host.hosts["counter"].tick()
        assert host.stats()["counter"]["actors_in_memory"] == 0
        assert await host.ask("counter", "k1", {"id": "b"}) == 2  # reloaded from PostgreSQL
        rows = await actor_rows(fast, "counter")
        assert rows["k1"]["state"] == {"count": 2, "applied": ["a", "b"]}
    finally:
        await host.close()


async def outbox_markers(fast: Settings, redis: Redis) -> list[bytes]:
    return [found async for found in redis.scan_iter(match=key(fast, "outbox", "published", "*"))]


async def test_outbox_publishes_each_event_once_across_a_relay_crash(
    fast: Settings, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay that dies after publishing a batch, before its rows are deleted, leaves rows
    and markers: the next relay recognises every event and publishes none twice. Once the rows
    are deleted no marker is left: Redis keeps nothing per event relayed."""
    host = await started(Runtime(fast, redis, [Counter()], relay=False))
    try:
        replies = [await host.ask("counter", "42", {"id": f"e{n}"}) for n in range(5)]
        assert replies == list(range(1, 6))
    finally:
        await host.close()
    publish = OutboxRelay._publish

    async def killed_after_publishing(self: OutboxRelay, *args: Any) -> int:
        await publish(self, *args)
        raise RuntimeError("relay killed before deleting its rows")

    monkeypatch.setattr(OutboxRelay, "_publish", killed_after_publishing)
    with pytest.raises(RuntimeError):
        await OutboxRelay(fast, redis).relay_once()
    assert await redis.xlen(events_key(fast)) == 5  # published, but their rows were kept
    assert await ActorOutbox.all().count() == 5
    markers = await outbox_markers(fast, redis)
    assert len(markers) == 5
    assert 0 < await redis.ttl(markers[0]) <= MARKER_TTL  # left behind, they expire
    monkeypatch.undo()

    restarted = OutboxRelay(fast, redis)
    assert await restarted.relay_once() == 5
    assert restarted.published == 0  # every one recognised, none sent again
    assert await restarted.relay_once() == 0
    assert await ActorOutbox.all().count() == 0
    assert await outbox_markers(fast, redis) == []

    host = await started(Runtime(fast, redis, [Counter()], relay=False))
    try:
        assert await host.ask("counter", "42", {"id": "e5"}) == 6
    finally:
        await host.close()
    assert await restarted.relay_once() == 1
    assert restarted.published == 1
    assert await outbox_markers(fast, redis) == []
    events = await redis.xrange(events_key(fast))
    assert [orjson.loads(fields[b"event"]) for _, fields in events] == [
        {"type": "counter.added", "key": "42", "count": count} for count in range(1, 7)
    ]


async def test_replies_from_a_batch_and_from_an_earlier_version_reach_their_asks(
    fast: Settings, redis: Redis
) -> None:
    """A worker publishes one JSON array per asking process and batch; a single outcome (a
    worker of an earlier version) is understood too. Outcomes of other asks are ignored."""
    sender = Runtime(fast, redis)
    await sender.start()
    loop = asyncio.get_running_loop()
    waiting = {name: loop.create_future() for name in ("a", "b", "c")}
    try:
        sender.replies.waiting.update(waiting)
        batch = [CommandResult("a", True, 1), CommandResult("gone", True, 2)]
        await redis.publish(
            sender.replies.channel, b"[" + b",".join(map(encode_result, batch)) + b"]"
        )
        await redis.publish(
            sender.replies.channel, encode_result(CommandResult("b", False, None, "x"))
        )
        await redis.publish(sender.replies.channel, encode_result(CommandResult("c", True, [3])))
        async with asyncio.timeout(5):
            results = [await waiting[name] for name in ("a", "b", "c")]
        assert [(r.command_id, r.ok, r.reply, r.error) for r in results] == [
            ("a", True, 1, None),
            ("b", False, None, "x"),
            ("c", True, [3], None),
        ]
        assert decode_results(encode_result(batch[1])) == [batch[1]]
    finally:
        await sender.close()


def test_an_entry_reads_the_same_from_redis_as_sent_or_as_a_mapping() -> None:
    """The reader takes entries as Redis sends them (names and values in turn); a client that
    maps them, or decodes them to text, gives the same entry."""
    flat = [b"id", b"c1", b"key", b"k", b"body", b'{"n":1}', b"reply", b"p1"]
    mapped = dict(zip(flat[::2], flat[1::2], strict=True))
    decoded = {name.decode(): value.decode() for name, value in mapped.items()}
    entries = [
        Entry.parse(3, message_id, fields)
        for message_id, fields in ((b"5-0", flat), (b"5-0", mapped), ("5-0", decoded))
    ]
    assert entries[0] == Entry(3, "5-0", "c1", "k", {"n": 1}, "p1")
    assert entries[1] == entries[0] and entries[2] == entries[0]
    told = Entry.parse(3, b"6-0", [b"id", b"c2", b"key", b"k", b"body", b"{}", b"reply", b""])
    assert told.reply_to == ""
    with pytest.raises(ValueError, match="zip"):  # an odd field list is no entry
        Entry.parse(3, b"7-0", flat[:-1])
