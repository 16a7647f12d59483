"""Admin endpoints of the actors' dead letters: list, replay once the cause is fixed, drop
(the web admin's face of `run.py dead-letters`; docs/actors.md, *Replaying dead letters*)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints

from actors import dead_letters
from deer import keys
from deer.accounts.admin_common_http import Strict, actor_of
from deer.accounts.audit import record_by
from deer.errors import NotFound
from deer.web.api import Api

api = Api(tags=["operations"])

PATH: Final = "/api/admin/actors/{kind}/dead-letters"
LetterId = Annotated[str, StringConstraints(pattern=r"^\d{1,20}-\d{1,20}$")]


class DeadLetterQuery(Strict):
    after: LetterId | None = Field(default=None, description="the last id of the page before")
    limit: int = Field(default=20, ge=1, le=100, description="at most 100")


class DeadLetterOut(BaseModel):
    id: str
    at: dt.datetime
    replayable: bool
    command_id: str
    key: str
    body: dict[str, Any] | None
    error: str
    attempts: int
    deliveries: int
    partition: int | None
    message_id: str
    fields: dict[str, str] | None = Field(description="an entry that was no command: its fields")


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    total: int = Field(description="dead letters of the kind waiting")
    next_after: str | None = Field(description="`after` for the next page; null: the last")


class ReplayOut(BaseModel):
    id: str
    command_id: str
    status: Literal["sent", "duplicate"] = Field(
        description="sent again, or dropped as a second dead letter of a delivery replayed already"
    )
    message_id: str = Field(description="the command's new entry in its partition stream")


def _kind(request: web.Request) -> str:
    kind = request.match_info["kind"]
    if kind not in request.app[keys.ACTORS].hosts:
        raise NotFound(f"no actor kind {kind!r} here", code="not_found")
    return kind


async def _audit(
    request: web.Request, action: str, kind: str, letter_id: str, **details: Any
) -> None:
    """`dead_letter.<action>` in the audit log, its target `<kind>/<id>`."""
    await record_by(
        actor_of(request), f"dead_letter.{action}", "dead_letter", f"{kind}/{letter_id}", **details
    )


def _out(letter: dead_letters.DeadLetter) -> DeadLetterOut:
    return DeadLetterOut(replayable=letter.replayable, **letter.as_json())


@api.get(
    PATH,
    summary="Dead letters of an actor kind, oldest first",
    query=DeadLetterQuery,
    response=DeadLetterPage,
    errors=(404,),
)
async def list_dead_letters(request: web.Request, query: DeadLetterQuery) -> DeadLetterPage:
    kind = _kind(request)
    settings, redis = request.app[keys.SETTINGS], request.app[keys.REDIS]
    letters = await dead_letters.dead_letters(
        settings, redis, kind, after=query.after or "", limit=query.limit
    )
    return DeadLetterPage(
        items=[_out(letter) for letter in letters],
        total=await dead_letters.waiting(settings, redis, kind),
        next_after=letters[-1].id if len(letters) == query.limit else None,
    )


@api.post(
    PATH + "/{id}/replay",
    summary="Send a dead letter's command to its actor again, once",
    response=ReplayOut,
    errors=(404, 409, 503),
)
async def replay_dead_letter(request: web.Request) -> ReplayOut:
    kind = _kind(request)
    done = await dead_letters.replay(
        request.app[keys.SETTINGS],
        request.app[keys.REDIS],
        kind,
        request.match_info["id"],
        partitions=request.app[keys.ACTORS].partitions(kind),  # as the runtime addresses it
    )
    await _audit(
        request,
        "replay",
        kind,
        done.letter_id,
        command_id=done.command_id,
        status=done.status,
        message_id=done.message_id,
    )
    return ReplayOut(
        id=done.letter_id,
        command_id=done.command_id,
        status=done.status,
        message_id=done.message_id,
    )


@api.delete(PATH + "/{id}", summary="Drop a dead letter for good", status=204, errors=(404,))
async def drop_dead_letter(request: web.Request) -> web.Response:
    kind, letter_id = _kind(request), request.match_info["id"]
    settings, redis = request.app[keys.SETTINGS], request.app[keys.REDIS]
    letter = await dead_letters.dead_letter(settings, redis, kind, letter_id)
    if not await dead_letters.drop(settings, redis, kind, [letter_id]):
        raise dead_letters.DeadLetterNotFound(kind, letter_id)
    await _audit(
        request,
        "drop",
        kind,
        letter_id,
        command_id=letter.command_id,
        key=letter.key,
        error=letter.error,
    )
    return web.Response(status=204)
