"""Who asked a command whose request timed out: only that caller may read its outcome.

A request whose actor did not answer in time leaves as `504 actor_timeout` with the command
id (the command is still applied once). Just before, the auth middleware records the caller
here, for as long as outcomes are kept (`DEER_ACTOR_OUTCOME_TTL`); `GET /api/commands/{id}`
(deer/web/commands.py) answers that caller only.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from actors.runtime import as_text
from config.settings import Settings
from deer.accounts.tokens import Principal
from deer.cache import key

log = logging.getLogger(__name__)


def asker_key(settings: Settings, command_id: str) -> str:
    """String: who asked the command, `<kind>:<id>` (`member:42`, `staff:7`)."""
    return key(settings, "actors", "asker", command_id)


def asker_name(principal: Principal) -> str:
    """A caller as recorded: members and staff are numbered apart, so the kind is part of it."""
    return f"{principal.kind}:{principal.id}"


async def remember(redis: Redis, settings: Settings, command_id: str, who: Principal) -> None:
    """Record who asked `command_id`. Never raises: with Redis failing the caller still gets
    its 504 (the command is still applied), but cannot fetch the outcome over HTTP."""
    try:
        await redis.set(
            asker_key(settings, command_id), asker_name(who), ex=settings.actor_outcome_ttl
        )
    except (RedisError, OSError) as exc:
        log.warning("command %s: its asker could not be recorded: %s", command_id, exc)


async def asked_by(redis: Redis, settings: Settings, command_id: str, who: Principal) -> bool:
    """Whether `who` asked `command_id` (and the record is still kept)."""
    found = await redis.get(asker_key(settings, command_id))
    return found is not None and as_text(found) == asker_name(who)
