"""`GET /api/commands/{command_id}`: what became of a command whose request timed out.

A request whose actor did not answer in time leaves as `504 actor_timeout` with
`details.command_id`; the command is not lost, it is applied once when its actor gets to it.
Its caller (and only its caller: deer/web/askers.py) asks here whether it is still `pending`,
was `applied`, was `refused` (the error the request would have answered, and its status) or
`failed` (set aside as a dead letter for an operator, who may replay it). Applied commands'
results are read from their resource (the cart, the order), as after any write.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from actors.base import CommandResult, rejection_of
from deer import keys
from deer.accounts.admin_common_http import Strict
from deer.errors import NotFound, ValidationFailed
from deer.web import askers
from deer.web.api import Api
from deer.web.auth import principal_of
from deer.web.responses import STATUS_OF_KIND, json_response

api = Api(tags=["commands"])

MAX_WAIT: Final = 10.0  # seconds a fetch may wait for a pending command's outcome
POLL_FIRST: Final = 0.05  # seconds between looks while waiting, doubling up to POLL_MAX
POLL_MAX: Final = 0.5
RETRY_AFTER: Final = "1"  # seconds, suggested to a client polling a pending command
_COMMAND_ID: Final = re.compile(r"[0-9a-f]{32}")

Status = Literal["pending", "applied", "refused", "failed"]


class CommandNotFound(NotFound):
    code = "command_not_found"
    default_message = (
        "no command of yours with this id: it did not time out for you, or its outcome is no "
        "longer kept"
    )


class CommandQuery(Strict):
    wait: float = Field(
        default=0,
        ge=0,
        le=MAX_WAIT,
        description="seconds to wait for the outcome while the command is pending (at most 10)",
    )


class CommandError(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class CommandOut(BaseModel):
    command_id: str
    status: Status = Field(
        description="pending: not handled yet; applied: done, read the resource for its result; "
        "refused: the actor refused it and nothing changed; failed: set aside for an operator"
    )
    http_status: int | None = Field(
        description="refused or failed: the status the timed-out request would have answered"
    )
    error: CommandError | None = Field(description="refused or failed: why")


FAILED: Final = CommandError(
    code="command_failed",
    message="the command could not be applied and was set aside for an operator; "
    "nothing changed unless they replay it",
    details={},
)


def outcome_of(command_id: str, result: CommandResult | None) -> CommandOut:
    """The answer for a command, from its stored outcome (None: not handled yet)."""
    if result is None:
        return CommandOut(command_id=command_id, status="pending", http_status=None, error=None)
    if not result.ok:
        return CommandOut(command_id=command_id, status="failed", http_status=500, error=FAILED)
    refused = rejection_of(result.reply)
    if refused is None:
        return CommandOut(command_id=command_id, status="applied", http_status=None, error=None)
    return CommandOut(
        command_id=command_id,
        status="refused",
        http_status=STATUS_OF_KIND.get(refused["kind"], 500),
        error=CommandError(
            code=refused["code"], message=refused["message"], details=refused["details"]
        ),
    )


def _command_id(request: web.Request) -> str:
    command_id = request.match_info["command_id"]
    if not _COMMAND_ID.fullmatch(command_id):
        raise ValidationFailed(
            f"{command_id[:64]!r} is no command id (32 lowercase hex digits, as "
            "`details.command_id` of a 504 gives it)",
            code="invalid_command_id",
        )
    return command_id


@api.get(
    "/api/commands/{command_id}",
    summary="What became of a command whose request timed out (504 actor_timeout)",
    query=CommandQuery,
    response=CommandOut,
    errors=(404, 422),
)
async def get_command(request: web.Request, query: CommandQuery) -> web.Response:
    command_id = _command_id(request)
    app = request.app
    redis, settings, runtime = app[keys.REDIS], app[keys.SETTINGS], app[keys.ACTORS]
    if not await askers.asked_by(redis, settings, command_id, principal_of(request)):
        raise CommandNotFound()
    result = await runtime.outcome(command_id)
    deadline, pause = time.monotonic() + query.wait, POLL_FIRST
    while result is None and (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, POLL_MAX)
        result = await runtime.outcome(command_id)
    out = outcome_of(command_id, result)
    headers = {"Retry-After": RETRY_AFTER} if out.status == "pending" else None
    return json_response(out, headers=headers)
