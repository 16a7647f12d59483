"""PostgreSQL side of the runtime: load an actor, commit a turn under the fencing check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from tortoise import connections
from tortoise.transactions import in_transaction

from actors.base import JsonObject, StaleOwner, VersionConflict

CONNECTION: Final = "default"


@dataclass(slots=True)
class Stored:
    """An actor's committed state as loaded (version 0: never committed)."""

    state: JsonObject
    last_message_id: str
    last_command_id: str
    last_reply: Any
    version: int


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _decoded(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


async def load(kind: str, key: str) -> Stored | None:
    # One statement, no explicit transaction: BEGIN and COMMIT would be two more round trips.
    rows = await connections.get(CONNECTION).execute_query_dict(
        "SELECT state, last_message_id, last_command_id, last_reply, version"
        " FROM actor_state WHERE kind = $1 AND key = $2",
        [kind, key],
    )
    if not rows:
        return None
    row = rows[0]
    return Stored(
        state=_decoded(row["state"]),
        last_message_id=row["last_message_id"],
        last_command_id=row["last_command_id"],
        last_reply=_decoded(row["last_reply"]),
        version=row["version"],
    )


async def record_token(kind: str, partition: int, token: int) -> int:
    """Raise the partition's fencing token above every earlier one; the token to commit with.

    PostgreSQL is the authority: the result is `max(stored + 1, token)`, so tokens keep growing
    even if Redis lost its counter. The row lock this takes waits for commits of the previous
    owner still in progress; every commit after it sees the new token.
    """
    async with in_transaction(CONNECTION) as connection:
        rows = await connection.execute_query_dict(
            "INSERT INTO actor_partition (kind, partition, fencing_token, acquired_at)"
            " VALUES ($1, $2, $3, now()) ON CONFLICT (kind, partition) DO UPDATE"
            " SET fencing_token = GREATEST(actor_partition.fencing_token + 1,"
            " EXCLUDED.fencing_token), acquired_at = now() RETURNING fencing_token",
            [kind, partition, token],
        )
    fence: int = rows[0]["fencing_token"]
    return fence


# The turn's commit is one statement, so one round trip and no explicit transaction (a single
# statement is atomic): the fencing check (`FOR SHARE` on the partition row, which waits for a
# `record_token` in progress and then sees its token), the state write (only if the token is
# still the partition's) and the events (only if the state was written). Its answer tells a
# stale owner (`fence` not the token: nothing written) from a stale copy (`version` NULL).
_FENCE: Final = (
    "WITH fence AS (SELECT fencing_token FROM actor_partition"
    " WHERE kind = $1 AND partition = $7 FOR SHARE), "
)
_EVENTS: Final = (
    ", events AS (INSERT INTO actor_outbox (kind, key, message_id, event, created_at)"
    " SELECT $1, $2, $4, e, now() FROM jsonb_array_elements($9::jsonb) AS e"
    " WHERE EXISTS (SELECT 1 FROM written))"
    " SELECT (SELECT fencing_token FROM fence) AS fence, (SELECT version FROM written) AS version"
)
INSERT_TURN: Final = (
    _FENCE
    + "written AS (INSERT INTO actor_state (kind, key, state, last_message_id, last_command_id,"
    " last_reply, version, updated_at)"
    " SELECT $1, $2, $3::jsonb, $4, $5, $6::jsonb, 1, now()"
    " WHERE EXISTS (SELECT 1 FROM fence WHERE fencing_token = $8)"
    " ON CONFLICT (kind, key) DO NOTHING RETURNING version)" + _EVENTS
)
UPDATE_TURN: Final = (
    _FENCE + "written AS (UPDATE actor_state SET state = $3::jsonb, last_message_id = $4,"
    " last_command_id = $5, last_reply = $6::jsonb, version = version + 1, updated_at = now()"
    " WHERE kind = $1 AND key = $2 AND version = $10"
    " AND EXISTS (SELECT 1 FROM fence WHERE fencing_token = $8) RETURNING version)" + _EVENTS
)


async def commit(
    *,
    kind: str,
    partition: int,
    token: int,
    key: str,
    state: JsonObject,
    message_id: str,
    command_id: str,
    reply: Any,
    version: int,
    events: Sequence[JsonObject] = (),
) -> int:
    """Write the turn's state, the message that caused it and its events, atomically.

    Raises `StaleOwner` when `token` is no longer the partition's (nothing is written) and
    `VersionConflict` when the row is not at `version` (a stale copy). Returns the new version.
    """
    values: list[Any] = [
        kind,
        key,
        _json(state),
        message_id,
        command_id,
        _json(reply),
        partition,
        token,
        _json(list(events)),
    ]
    if version == 0:
        rows = await connections.get(CONNECTION).execute_query_dict(INSERT_TURN, values)
    else:
        rows = await connections.get(CONNECTION).execute_query_dict(UPDATE_TURN, [*values, version])
    row = rows[0]
    if row["fence"] != token:
        raise StaleOwner(kind, partition, token)
    if row["version"] is None:
        raise VersionConflict(f"{kind}/{key} is no longer at version {version}")
    return version + 1
