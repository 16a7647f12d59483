"""Dead letters: the commands a kind's actors gave up on, listed, replayed once the cause is
fixed, or dropped (`python run.py dead-letters`, docs/actors.md *Failures and dead letters*).

A replay appends the command again, under its own command id, to its actor's partition stream,
with nobody waiting for the reply: the actor handles it as a new command (its outcome replaces
the failed one under that id) and the dead letter is deleted, in one step. Three rules keep a
command from being applied twice:

- it is replayed only after the turn that gave up on it committed (the actor's
  `last_message_id` reached the entry), since a process that died before that commit leaves the
  entry to be delivered again (dead letters are at least once);
- the replay's entry id is remembered per command (`actors:<kind>:replayed:<command id>`), so
  another dead letter of the same delivery (written twice by a process that died between the
  dead letter and the commit) is dropped instead of replayed again, while a dead letter of the
  replay itself (it failed again) may be replayed in its turn;
- the check, the append and the delete are one script: replays running at once, from several
  operators or processes, send it once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from redis.asyncio import Redis

from actors import store
from actors.base import ActorError, JsonObject, Overloaded, message_order, partition_of
from actors.runtime import as_text, dead_letter_key, stream_key
from config.settings import Settings
from deer.cache import key
from deer.errors import Conflict, NotFound, ValidationFailed

LIST_LIMIT: Final = 1000  # dead letters listed at most per call


class DeadLetterNotFound(ActorError, NotFound):
    code = "dead_letter_not_found"
    default_message = "no such dead letter (replayed, dropped or trimmed away)"

    def __init__(self, kind: str, letter_id: str) -> None:
        super().__init__(f"no dead letter {letter_id} of {kind}", actor_kind=kind, id=letter_id)


class NotReplayable(ActorError, Conflict):
    """The entry was no command (set aside when read): there is nothing to send again."""

    code = "dead_letter_not_replayable"
    default_message = "this dead letter holds no command to replay"


class StillDelivered(ActorError, Conflict):
    """The turn that wrote the dead letter has not committed: its process died before, and the
    entry will be delivered again. Replaying now could apply the command twice."""

    code = "dead_letter_in_flight"
    default_message = "the command is still being delivered; replay it once it is settled"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of a kind's dead-letter stream.

    `id` is its id in that stream (`at`: when it was written). A command's dead letter has
    `command_id`, `key` and `body`; an entry that was no command (set aside when read) has
    only `error`, `partition`, `message_id` and its raw `fields`.
    """

    id: str
    error: str
    partition: int | None
    message_id: str
    command_id: str = ""
    key: str = ""
    body: JsonObject | None = None
    attempts: int = 0
    deliveries: int = 0
    fields: dict[str, str] | None = None

    @property
    def at(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(int(self.id.split("-")[0]) / 1000, dt.UTC)

    @property
    def replayable(self) -> bool:
        return bool(self.command_id and self.key) and self.body is not None

    def as_json(self) -> JsonObject:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "command_id": self.command_id,
            "key": self.key,
            "body": self.body,
            "error": self.error,
            "attempts": self.attempts,
            "deliveries": self.deliveries,
            "partition": self.partition,
            "message_id": self.message_id,
            "fields": self.fields,
        }


@dataclass(frozen=True, slots=True)
class Replayed:
    """What a replay did: `sent` (appended as `message_id`) or `duplicate` (another dead letter
    of a command replayed already as `message_id`: dropped, not sent)."""

    letter_id: str
    command_id: str
    status: Literal["sent", "duplicate"]
    message_id: str


def replayed_key(settings: Settings, kind: str, command_id: str) -> str:
    return key(settings, "actors", kind, "replayed", command_id)


def _letter(entry_id: Any, raw: dict[Any, Any]) -> DeadLetter:
    fields = {as_text(name): as_text(value) for name, value in raw.items()}
    partition = fields.get("partition", "")
    common: dict[str, Any] = {
        "id": as_text(entry_id),
        "error": fields.get("error", ""),
        "partition": int(partition) if partition.isdigit() else None,
        "message_id": fields.get("message_id", ""),
    }
    if "fields" in fields or "id" not in fields:  # set aside when read: no command
        try:
            original = orjson.loads(fields.get("fields", "{}"))
        except orjson.JSONDecodeError:
            original = None
        if not isinstance(original, dict):
            original = {"fields": fields.get("fields", "")}
        return DeadLetter(**common, fields={str(k): str(v) for k, v in original.items()})
    try:
        body = orjson.loads(fields.get("body", ""))
    except orjson.JSONDecodeError:
        body = None
    return DeadLetter(
        **common,
        command_id=fields["id"],
        key=fields.get("key", ""),
        body=body if isinstance(body, dict) else None,
        attempts=int(fields.get("attempts") or 0),
        deliveries=int(fields.get("deliveries") or 0),
    )


def _checked_id(letter_id: str) -> str:
    """A stream entry id (`<ms>-<seq>`), or `ValidationFailed`: Redis would refuse it less
    kindly."""
    ms, _, seq = letter_id.partition("-")
    if not (ms.isdigit() and seq.isdigit() and max(int(ms), int(seq)) < 2**64):
        raise ValidationFailed(
            f"{letter_id!r} is no dead-letter id (they look like 1764000000000-0)",
            code="invalid_dead_letter_id",
        )
    return letter_id


async def dead_letters(
    settings: Settings, redis: Redis, kind: str, *, after: str = "", limit: int = 100
) -> list[DeadLetter]:
    """The oldest `limit` dead letters of `kind` (after the id `after`, for the next page)."""
    if not 1 <= limit <= LIST_LIMIT:
        raise ValidationFailed(
            f"list 1 to {LIST_LIMIT} dead letters at a time", code="invalid_limit"
        )
    start = f"({_checked_id(after)}" if after else "-"
    found: Any = await redis.xrange(dead_letter_key(settings, kind), min=start, count=limit)
    return [_letter(entry_id, raw) for entry_id, raw in found]


async def dead_letter(settings: Settings, redis: Redis, kind: str, letter_id: str) -> DeadLetter:
    found: Any = await redis.xrange(
        dead_letter_key(settings, kind), min=_checked_id(letter_id), max=letter_id
    )
    if not found:
        raise DeadLetterNotFound(kind, letter_id)
    return _letter(*found[0])


async def waiting(settings: Settings, redis: Redis, kind: str) -> int:
    """How many dead letters of `kind` wait to be replayed or dropped."""
    count: int = await redis.xlen(dead_letter_key(settings, kind))
    return count


async def drop(settings: Settings, redis: Redis, kind: str, letter_ids: list[str]) -> int:
    """Delete dead letters for good; how many there were."""
    if not letter_ids:
        return 0
    ids = [_checked_id(letter_id) for letter_id in letter_ids]
    deleted: int = await redis.xdel(dead_letter_key(settings, kind), *ids)
    return deleted


# Replay one dead letter: if it is still there, and its command was not replayed since its
# delivery (the replay's entry id, remembered per command, is newer than the dead letter's
# `message_id`), append its command to the partition stream (unless full) with nobody to
# reply to, remember the new entry id, delete the dead letter. A dead letter of a delivery
# before the last replay is a duplicate: deleted, not sent.
# KEYS: the dead-letter stream, the partition stream, the command's replayed marker.
# ARGV: the dead letter's id, the stream limit, the marker's TTL (seconds), the key the
# partition was chosen for. Returns {'gone'}, {'full'}, {'changed'}, {'duplicate', id} or
# {'sent', id}.
REPLAY: Final = """
local found = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #found == 0 then return {'gone'} end
local f = {}
for i = 1, #found[1][2], 2 do f[found[1][2][i]] = found[1][2][i + 1] end
if f['key'] ~= ARGV[4] or not f['id'] or not f['body'] then return {'changed'} end
local function order(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local last = redis.call('GET', KEYS[3])
if last and f['message_id'] then
  local lms, lseq = order(last)
  local dms, dseq = order(f['message_id'])
  if dms and lms and (dms < lms or (dms == lms and dseq < lseq)) then
    redis.call('XDEL', KEYS[1], ARGV[1])
    return {'duplicate', last}
  end
end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then return {'full'} end
local id = redis.call('XADD', KEYS[2], '*', 'id', f['id'], 'key', f['key'], 'body', f['body'],
                      'reply', '')
redis.call('SET', KEYS[3], id, 'EX', ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[1])
return {'sent', id}
"""


async def replay(
    settings: Settings, redis: Redis, kind: str, letter_id: str, *, partitions: int | None = None
) -> Replayed:
    """Send a dead letter's command to its actor again (see the module's rules).

    Raises `DeadLetterNotFound`, `NotReplayable` (no command), `StillDelivered` (the turn that
    gave up has not committed yet) or `Overloaded` (the partition's stream is full: nothing
    changed). `partitions`: the kind's partition count (the setting by default).
    """
    letter = await dead_letter(settings, redis, kind, letter_id)
    if not letter.replayable:
        raise NotReplayable(actor_kind=kind, id=letter_id)
    committed = (await store.load(kind, [letter.key])).get(letter.key)
    if letter.message_id and (
        committed is None
        or not committed.last_message_id
        or message_order(committed.last_message_id) < message_order(letter.message_id)
    ):
        raise StillDelivered(actor_kind=kind, id=letter_id, key=letter.key)
    partition = partition_of(letter.key, partitions or settings.actor_partitions)
    answer = await redis.eval(
        REPLAY,
        3,
        dead_letter_key(settings, kind),
        stream_key(settings, kind, partition),
        replayed_key(settings, kind, letter.command_id),
        letter_id,
        settings.actor_max_stream_length,
        settings.actor_outcome_ttl,
        letter.key,
    )
    status = as_text(answer[0])
    if status in ("gone", "changed"):
        raise DeadLetterNotFound(kind, letter_id)
    if status == "full":
        raise Overloaded(kind, partition)
    assert status in ("sent", "duplicate"), status
    return Replayed(letter_id, letter.command_id, status, as_text(answer[1]))  # type: ignore[arg-type]
