"""Dead letters listed, replayed once the cause is fixed (once, however many replay at the same
time, and not again for a second dead letter of the same delivery), refused while their
delivery is unsettled or their stream is full, dropped; and `run.py dead-letters`."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from redis.asyncio import Redis

from actors import cli, dead_letters
from actors.base import CommandFailed, JsonObject, Outcome, Overloaded, partition_of
from actors.dead_letters import DeadLetterNotFound, NotReplayable, StillDelivered
from actors.runtime import Runtime, dead_letter_key, stream_key
from actors.testing.counter import Counter
from config.settings import Settings
from deer.errors import ValidationFailed
from tests.actors_support import actor_rows, eventually
from tests.actors_support import fast as fast
from tests.actors_support import redis as redis

ROOT = Path(__file__).resolve().parent.parent


class Fixed(Counter):
    """The counter after the fix: a command marked `fail` is applied like any other."""

    kind: ClassVar[str] = "counter"

    async def handle(self, key: str, state: JsonObject, command: JsonObject) -> Outcome:
        return await super().handle(key, state, {**command, "fail": False})


async def started(runtime: Runtime) -> Runtime:
    await runtime.start()
    return runtime


async def poisoned(settings: Settings, redis: Redis, key: str = "42") -> str:
    """A command that fails every attempt, dead-lettered by a host that then stops; its id."""
    host = await started(Runtime(settings, redis, [Counter()]))
    try:
        assert await host.ask("counter", key, {"id": "before"}) == 1
        with pytest.raises(CommandFailed) as failed:
            await host.ask("counter", key, {"id": "bad", "fail": True})
        return failed.value.command_id
    finally:
        await host.close()


async def applied(settings: Settings, key: str = "42") -> list[str]:
    rows = await actor_rows(settings, "counter")
    return list(rows[key]["state"]["applied"]) if key in rows else []


async def test_dead_letters_are_listed_with_command_and_error(fast: Settings, redis: Redis) -> None:
    command_id = await poisoned(fast, redis)
    stream = stream_key(fast, "counter", partition_of("k", fast.actor_partitions))
    await redis.xadd(stream, {"junk": "x"})  # no command: set aside when read
    host = await started(Runtime(fast, redis, [Counter()]))
    try:
        assert await host.ask("counter", "k", {"id": "after the junk"}) == 1
    finally:
        await host.close()

    letters = await dead_letters.dead_letters(fast, redis, "counter")
    assert [letter.replayable for letter in letters] == [True, False]
    poison, junk = letters
    assert (poison.command_id, poison.key, poison.body) == (
        command_id,
        "42",
        {"id": "bad", "fail": True},
    )
    assert (poison.error, poison.attempts) == ("Poison: poison command bad", 2)
    assert junk.fields == {"junk": "x"} and junk.error.startswith("unreadable entry")
    assert await dead_letters.dead_letters(fast, redis, "counter", after=poison.id) == [junk]
    assert await dead_letters.dead_letter(fast, redis, "counter", junk.id) == junk
    with pytest.raises(NotReplayable):
        await dead_letters.replay(fast, redis, "counter", junk.id)
    assert await redis.xlen(dead_letter_key(fast, "counter")) == 2  # nothing changed


async def test_replays_at_once_send_the_command_once(fast: Settings, redis: Redis) -> None:
    command_id = await poisoned(fast, redis)
    (letter,) = await dead_letters.dead_letters(fast, redis, "counter")
    results = await asyncio.gather(
        *(dead_letters.replay(fast, redis, "counter", letter.id) for _ in range(20)),
        return_exceptions=True,
    )
    sent = [result for result in results if isinstance(result, dead_letters.Replayed)]
    assert [result.status for result in sent] == ["sent"]
    assert all(isinstance(result, DeadLetterNotFound) for result in results if result not in sent)
    assert await redis.xlen(dead_letter_key(fast, "counter")) == 0

    host = await started(Runtime(fast, redis, [Fixed()]))  # the fix is deployed
    try:

        async def handled() -> bool:
            return "bad" in await applied(fast)

        await eventually(handled, 10, "the replayed command applied")
        assert await host.ask("counter", "42", {"id": "later"}) == 3
        assert await applied(fast) == ["before", "bad", "later"]
        outcome = await host.outcome(command_id)  # the failed outcome replaced
        assert outcome is not None and (outcome.ok, outcome.reply) == (True, 2)
    finally:
        await host.close()


async def test_a_second_dead_letter_of_a_replayed_delivery_is_dropped(
    fast: Settings, redis: Redis
) -> None:
    """A process that died between the dead letter and its commit leaves a second dead letter
    of the same delivery: replaying both would apply the command twice."""
    await poisoned(fast, redis)
    (letter,) = await redis.xrange(dead_letter_key(fast, "counter"))  # type: ignore[misc]
    await redis.xadd(dead_letter_key(fast, "counter"), letter[1])  # type: ignore[arg-type]
    first, second = await dead_letters.dead_letters(fast, redis, "counter")
    assert (await dead_letters.replay(fast, redis, "counter", first.id)).status == "sent"
    again = await dead_letters.replay(fast, redis, "counter", second.id)
    assert again.status == "duplicate"
    assert await redis.xlen(dead_letter_key(fast, "counter")) == 0

    host = await started(Runtime(fast, redis, [Fixed()]))
    try:
        assert await host.ask("counter", "42", {"id": "later"}) == 3  # after the replay
        assert await applied(fast) == ["before", "bad", "later"]
    finally:
        await host.close()


async def test_a_replay_that_fails_again_can_be_replayed_again(
    fast: Settings, redis: Redis
) -> None:
    await poisoned(fast, redis)
    (letter,) = await dead_letters.dead_letters(fast, redis, "counter")
    await dead_letters.replay(fast, redis, "counter", letter.id)
    host = await started(Runtime(fast, redis, [Counter()]))  # not fixed yet: fails again
    try:

        async def dead_again() -> bool:
            return await redis.xlen(dead_letter_key(fast, "counter")) == 1

        await eventually(dead_again, 10, "the replay dead-lettered")
    finally:
        await host.close()
    (second,) = await dead_letters.dead_letters(fast, redis, "counter")
    assert second.command_id == letter.command_id and second.message_id > letter.message_id
    assert (await dead_letters.replay(fast, redis, "counter", second.id)).status == "sent"
    host = await started(Runtime(fast, redis, [Fixed()]))
    try:
        assert await host.ask("counter", "42", {"id": "later"}) == 3
        assert await applied(fast) == ["before", "bad", "later"]
    finally:
        await host.close()


async def test_an_unsettled_delivery_is_not_replayed(fast: Settings, redis: Redis) -> None:
    """A dead letter whose turn did not commit (its process died right after writing it): the
    entry will be delivered again, so a replay now could apply it twice."""
    fields = {"id": "c1", "key": "k", "body": '{"id": "c1"}', "message_id": "9999999999999-0"}
    fields |= {"partition": "1", "error": "Poison: x", "attempts": "2", "deliveries": "1"}
    entry = await redis.xadd(dead_letter_key(fast, "counter"), fields)  # type: ignore[arg-type]
    letter_id = entry.decode() if isinstance(entry, bytes) else entry
    with pytest.raises(StillDelivered) as refused:
        await dead_letters.replay(fast, redis, "counter", letter_id)
    assert refused.value.code == "dead_letter_in_flight"
    assert await redis.xlen(dead_letter_key(fast, "counter")) == 1
    assert await redis.xlen(stream_key(fast, "counter", partition_of("k", 4))) == 0


async def test_a_full_stream_refuses_the_replay(fast: Settings, redis: Redis) -> None:
    await poisoned(fast, redis)
    sender = await started(Runtime(fast, redis))  # nobody reads: the stream keeps its entry
    try:
        await sender.tell("counter", "42", {"id": "waiting"})
    finally:
        await sender.close()
    stream = stream_key(fast, "counter", partition_of("42", fast.actor_partitions))
    full = fast.with_values(actor_max_stream_length=await redis.xlen(stream))
    (letter,) = await dead_letters.dead_letters(full, redis, "counter")
    with pytest.raises(Overloaded):
        await dead_letters.replay(full, redis, "counter", letter.id)
    assert await dead_letters.dead_letters(full, redis, "counter") == [letter]


async def test_bad_ids_and_dropping(fast: Settings, redis: Redis) -> None:
    await poisoned(fast, redis)
    (letter,) = await dead_letters.dead_letters(fast, redis, "counter")
    for bad in ("", "abc", "1-x", "-1-0", "1" * 50 + "-0", f"{2**64}-0", "1-0-0"):
        with pytest.raises(ValidationFailed) as refused:
            await dead_letters.replay(fast, redis, "counter", bad)
        assert refused.value.code == "invalid_dead_letter_id"
    with pytest.raises(ValidationFailed):
        await dead_letters.dead_letters(fast, redis, "counter", limit=0)
    with pytest.raises(DeadLetterNotFound) as missing:
        await dead_letters.replay(fast, redis, "counter", "1-0")
    assert missing.value.code == "dead_letter_not_found"
    assert await dead_letters.drop(fast, redis, "counter", [letter.id, "1-0"]) == 1
    assert await dead_letters.drop(fast, redis, "counter", [letter.id]) == 0
    assert await dead_letters.dead_letters(fast, redis, "counter") == []


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


async def command(settings: Settings, redis: Redis, *argv: str) -> tuple[int, list[str]]:
    said: list[str] = []
    code = await cli.run(settings, redis, ["counter", "cart"], parse(*argv), said.append)
    return code, said


async def test_the_command_lists_replays_and_drops(fast: Settings, redis: Redis) -> None:
    command_id = await poisoned(fast, redis, "a")
    await poisoned(fast, redis, "b")
    await poisoned(fast, redis, "c")
    assert await command(fast, redis) == (0, ["counter: 3 dead letters", "cart: 0 dead letters"])
    code, said = await command(fast, redis, "counter", "--limit", "2")
    first, second = (line.split()[0] for line in said[:2])
    assert code == 0 and f"key a  command {command_id}  2 attempts" in said[0]
    assert said[2] == f"2 shown of 3; next page: --after {second}"
    code, said = await command(fast, redis, "counter", "--json", "--after", second)
    assert code == 0 and len(said) == 1 and '"key":"c"' in said[0]
    third = said[0].split('"id":"')[1].split('"')[0]

    assert await command(fast, redis, "counter", "--drop", third) == (0, ["dropped 1 of 1"])
    code, said = await command(fast, redis, "counter", "--replay", first, "1-0")
    assert code == 1 and said[0].startswith(f"{first}: sent again as ")
    assert said[1:] == [
        "1-0: not replayed: no dead letter 1-0 of counter (dead_letter_not_found)",
        "replayed 1 of 2",
    ]
    code, said = await command(fast, redis, "counter", "--replay-all")
    assert code == 0 and said[-1] == "replayed 1 of 1" and said[0].startswith(second)
    assert await command(fast, redis, "counter", "--replay-all") == (0, ["replayed 0 of 0"])
    with pytest.raises(ValidationFailed, match="no actor kind 'nope'"):
        await command(fast, redis, "nope")
    with pytest.raises(ValidationFailed, match="name the kind"):
        await command(fast, redis, "--drop", first)


def test_run_py_dead_letters(fast: Settings) -> None:
    """The command as an operator runs it, on the configured servers."""
    assert fast.database_url is not None and fast.redis_url is not None
    environment = {name: value for name, value in os.environ.items() if "DEER_" not in name}
    environment |= {
        "DEER_DATABASE_URL": fast.database_url.get_secret_value(),
        "DEER_REDIS_URL": fast.redis_url.get_secret_value(),
        "DEER_REDIS_NAMESPACE": fast.redis_namespace,
    }

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "run.py", "dead-letters", *argv],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = run()
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["cart: 0 dead letters", "order: 0 dead letters"]
    unknown = run("counter")
    assert unknown.returncode == 1
    assert "deer: no actor kind 'counter' here (kinds: cart, order)" in unknown.stderr
    bad = run("order", "--replay", "yesterday")
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        "yesterday: not replayed: 'yesterday' is no dead-letter id (they look like"
        " 1764000000000-0) (invalid_dead_letter_id)",
        "replayed 0 of 1",
    ]
