"""What an actor is: its protocol, the outcome of a turn, addressing and the runtime's errors."""

from __future__ import annotations

import hashlib
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeAlias

from deer import errors
from deer.errors import DeerError, TimedOut, Unavailable

JsonObject: TypeAlias = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Reminder:
    """A command the actor sends itself at `at` (Unix time, seconds), durable in Redis.

    `id` names it within the actor (to replace or cancel it); empty: derived from the command
    that scheduled it and its place in the outcome, so handling that command again gives the
    same id. Scheduling an id again replaces the earlier reminder of that id.
    """

    at: float
    command: JsonObject
    id: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one turn produced: the new state, the reply to the sender, domain events, and
    reminders to schedule or cancel (by id), all applied only if the turn commits."""

    state: JsonObject
    reply: Any = None
    events: Sequence[JsonObject] = field(default_factory=tuple)
    reminders: Sequence[Reminder] = field(default_factory=tuple)
    cancel_reminders: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The stored outcome of a command, as `Runtime.outcome(command_id)` returns it."""

    command_id: str
    ok: bool
    reply: Any = None
    error: str | None = None


class Actor(ABC):
    """One class per kind; one instance serves every key of the kind (state lives outside)."""

    kind: ClassVar[str]

    def initial_state(self, key: str) -> JsonObject:
        """The state of an actor that never committed anything."""
        return {}

    @abstractmethod
    async def handle(self, key: str, state: JsonObject, command: JsonObject) -> Outcome:
        """Handle one command; return a new state (never mutate `state`).

        Raising a `DeerError` (a domain error: `OutOfStock`, an illegal transition) refuses
        the command: nothing changes, the error is the reply, and `ask` raises it again. Any
        other exception is a failure: retried, then dead-lettered.
        """


class ActorError(Exception):
    """Base of the runtime's errors."""


class StaleOwner(ActorError):
    """This process's fencing token is no longer the partition's: it must not commit."""

    def __init__(self, kind: str, partition: int, token: int) -> None:
        super().__init__(f"{kind} partition {partition}: token {token} is no longer current")
        self.kind = kind
        self.partition = partition
        self.token = token


class VersionConflict(ActorError):
    """The state row moved on since this process loaded it: reload before handling again."""


class AskTimeout(ActorError, TimedOut, TimeoutError):
    """No reply in time; the command is not lost: fetch it later with `outcome(command_id)`.

    A domain error of kind `timeout`: the HTTP edge answers `504`, code `actor_timeout`,
    `details.command_id`.
    """

    code = "actor_timeout"
    default_message = "the actor did not answer in time; the command will still be applied once"

    def __init__(self, command_id: str) -> None:
        super().__init__(command_id=command_id)
        self.command_id = command_id


class Overloaded(ActorError, Unavailable):
    """A partition's stream already holds `DEER_ACTOR_MAX_STREAM_LENGTH` entries (its actors
    are far behind, or nobody hosts them): the command was not sent. A domain error of kind
    `unavailable`: the HTTP edge answers `503`, code `actors_overloaded`."""

    code = "actors_overloaded"
    default_message = "too many commands are waiting for these actors; try again shortly"

    def __init__(self, kind: str, partition: int) -> None:
        super().__init__(actor_kind=kind, partition=partition)
        self.actor_kind = kind
        self.partition = partition


class CommandFailed(ActorError):
    """The actor failed on the command every attempt; it went to the dead-letter stream."""

    def __init__(self, command_id: str, error: str) -> None:
        super().__init__(f"command {command_id} failed: {error}")
        self.command_id = command_id
        self.error = error


# A reply that carries a domain error instead of a result (see `rejection`).
REJECTED: Final = "__rejected__"

_ERROR_OF_KIND: Final[dict[str, type[DeerError]]] = {
    "validation_error": errors.ValidationFailed,
    "not_found": errors.NotFound,
    "unauthorized": errors.Unauthorized,
    "forbidden": errors.Forbidden,
    "conflict": errors.Conflict,
    "unavailable": errors.Unavailable,
}


def rejection(error: DeerError) -> JsonObject:
    """The reply of a turn whose `handle` raised a domain error: the command is refused, the
    state stays as it was, and `ask` raises the error again in the caller's process."""
    return {
        REJECTED: {
            "kind": error.kind,
            "code": error.code,
            "message": error.message,
            "details": error.details,
        }
    }


def rejection_of(reply: Any) -> JsonObject | None:
    """The domain error a reply carries (`rejection`: its kind, code, message and details), or
    None for a reply that is a result."""
    if isinstance(reply, dict) and REJECTED in reply:
        found: JsonObject = reply[REJECTED]
        return found
    return None


def raise_rejection(reply: Any) -> None:
    """Raise the domain error a reply carries, if it carries one (`rejection`)."""
    found = rejection_of(reply)
    if found is not None:
        error_class = _ERROR_OF_KIND.get(found["kind"], DeerError)
        raise error_class(found["message"], code=found["code"], **found["details"])


def partition_of(key: str, partitions: int) -> int:
    """The partition of a key: crc32, stable across processes and Python versions."""
    return zlib.crc32(key.encode()) % partitions


def reminder_command_id(kind: str, key: str, reminder_id: str) -> str:
    """The stable command id a reminder fires with: 32 hex characters, like a sender's."""
    name = "\0".join((kind, key, reminder_id)).encode()
    return hashlib.blake2b(name, digest_size=16).hexdigest()


def message_order(message_id: str) -> tuple[int, int]:
    """A stream id `"<ms>-<seq>"` as a tuple that sorts like Redis sorts ids."""
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)
