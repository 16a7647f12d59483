"""How long outcomes are kept, so Redis does not keep a key a day per command: an ask answered
in time keeps its outcome only a little longer than asks wait; a tell's, and the outcome of an
ask that timed out (before or after the outcome was stored), are kept `DEER_ACTOR_OUTCOME_TTL`
for a later `outcome(command_id)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from actors.base import AskTimeout, CommandResult
from actors.runtime import Runtime, answered_outcome_ttl, outcome_key, wanted_key
from actors.testing.counter import Counter
from config.settings import Settings
from tests.actors_support import eventually
from tests.actors_support import fast as fast
from tests.actors_support import redis as redis


@pytest.fixture
async def host(fast: Settings, redis: Redis) -> AsyncIterator[Runtime]:
    runtime = Runtime(fast, redis, [Counter()], relay=False)
    await runtime.start()
    yield runtime
    await runtime.close()


async def ttl_of(fast: Settings, redis: Redis, command_id: str) -> int:
    ttl: int = await redis.ttl(outcome_key(fast, command_id))
    return ttl


def test_an_answered_outcome_outlives_the_ask_timeout(fast: Settings) -> None:
    assert answered_outcome_ttl(fast) == 2 * 5 + 60  # the default ask timeout is 5 s
    assert answered_outcome_ttl(fast.with_values(actor_ask_timeout=0.5)) == 61
    assert answered_outcome_ttl(fast.with_values(actor_outcome_ttl=30)) == 30


async def test_an_answered_ask_keeps_its_outcome_briefly_and_a_tell_for_the_day(
    fast: Settings, redis: Redis, host: Runtime
) -> None:
    sender = Runtime(fast, redis)
    await sender.start()
    try:
        assert await sender.ask("counter", "a", {"id": "asked"}) == 1
        [answered] = [name async for name in redis.scan_iter(match=outcome_key(fast, "*"))]
        assert 0 < await redis.ttl(answered) <= answered_outcome_ttl(fast)

        told = await sender.tell("counter", "b", {"id": "told"})

        async def stored() -> bool:
            return await sender.outcome(told) is not None

        await eventually(stored, 10, "the tell's outcome stored")
        assert await ttl_of(fast, redis, told) > fast.actor_outcome_ttl - 60
    finally:
        await sender.close()


async def test_an_ask_that_timed_out_keeps_its_outcome_for_the_day(
    fast: Settings, redis: Redis, host: Runtime
) -> None:
    """The actor answers after the asker gave up: `FINISH` finds the wanted key."""
    with pytest.raises(AskTimeout) as timed_out:
        await host.ask("counter", "slow", {"id": "slow", "sleep": 0.5}, timeout=0.1)
    command_id = timed_out.value.command_id
    assert await redis.ttl(wanted_key(fast, command_id)) > fast.actor_outcome_ttl - 60

    async def stored() -> bool:
        return await host.outcome(command_id) is not None

    await eventually(stored, 10, "the timed-out command applied")
    assert await host.outcome(command_id) == CommandResult(command_id, True, 1, None)
    assert await ttl_of(fast, redis, command_id) > fast.actor_outcome_ttl - 60


class LostReplies(dict[str, Any]):
    """The asks' futures, as if every reply got lost on the way (a subscription reconnecting)."""

    def get(self, *args: Any) -> None:
        return None


async def test_an_ask_whose_reply_was_lost_keeps_its_outcome_once_it_times_out(
    fast: Settings, redis: Redis, host: Runtime
) -> None:
    """The outcome is stored (briefly, an asker was waiting), its reply never arrives: the
    timeout extends it to the day."""
    sender = Runtime(fast, redis)
    await sender.start()
    sender.replies.waiting = LostReplies()
    try:
        with pytest.raises(AskTimeout) as timed_out:
            await sender.ask("counter", "lost", {"id": "lost"}, timeout=1.0)
        command_id = timed_out.value.command_id
        assert await sender.outcome(command_id) == CommandResult(command_id, True, 1, None)
        assert await ttl_of(fast, redis, command_id) > fast.actor_outcome_ttl - 60
    finally:
        await sender.close()
