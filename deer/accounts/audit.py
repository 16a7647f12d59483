"""The audit log: who did what to what, from where, and how it ended; and its listing."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Literal

from deer.accounts.admin_common import Page, Paging, paged
from deer.accounts.models import AuditLog, Member, User
from deer.accounts.tokens import Principal

log = logging.getLogger(__name__)

Result = Literal["ok", "denied", "failed"]


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as the HTTP layer saw it."""

    ip: str = ""
    user_agent: str = ""
    request_id: str = ""


SYSTEM = Origin()


@dataclass(frozen=True)
class Actor:
    """Who asks for a change, and from where: every write is recorded with it."""

    principal: Principal
    origin: Origin


async def record(
    action: str,
    result: Result,
    origin: Origin,
    *,
    actor_kind: str,
    actor_id: int | None = None,
    actor_name: str = "",
    target_type: str = "",
    target_id: str | int = "",
    **details: Any,
) -> None:
    await AuditLog.create(
        actor_kind=actor_kind,
        actor_id=actor_id,
        actor_name=actor_name[:64],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        result=result,
        ip=origin.ip[:45],
        user_agent=origin.user_agent[:256],
        request_id=origin.request_id[:128],
        details=details,
    )


async def record_by(
    actor: Actor, action: str, target_type: str, target_id: int | str, **details: Any
) -> None:
    """Record a write `actor` was allowed to make, under the actor's current name."""
    principal = actor.principal
    model: type[User | Member] = User if principal.kind == "staff" else Member
    names = await model.filter(id=principal.id).values_list("name", flat=True)
    await record(
        action,
        "ok",
        actor.origin,
        actor_kind=principal.kind,
        actor_id=principal.id,
        actor_name=str(names[0]) if names else "",
        target_type=target_type,
        target_id=target_id,
        **details,
    )


@dataclass(frozen=True)
class AuditFilter:
    actor_id: int | None = None
    actor_kind: str | None = None
    action: str | None = None
    result: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


async def list_audit(paging: Paging, where: AuditFilter) -> Page[AuditLog]:
    """The audit log, newest first; `since` is inclusive, `until` exclusive."""
    query = AuditLog.all()
    exact = {
        "actor_id": where.actor_id,
        "actor_kind": where.actor_kind,
        "action": where.action,
        "result": where.result,
        "target_type": where.target_type,
        "target_id": where.target_id,
    }
    query = query.filter(**{name: value for name, value in exact.items() if value is not None})
    if where.since is not None:
        query = query.filter(created_at__gte=where.since)
    if where.until is not None:
        query = query.filter(created_at__lt=where.until)
    rows, total = await paged(query, paging, "-created_at", "-id")
    return Page(rows, total, paging.page, paging.size)
