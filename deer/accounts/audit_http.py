"""Admin endpoint of the audit log: newest first, with filters."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from deer.accounts import audit
from deer.accounts.admin_common_http import Id, PageQuery, page_out
from deer.accounts.models import AuditLog
from deer.web.api import Api

api = Api(tags=["admin"])


class AuditQuery(PageQuery):
    actor_id: Id | None = None
    actor_kind: Literal["staff", "member", "anonymous", "system"] | None = None
    action: Annotated[str, StringConstraints(pattern=r"^[a-z_.]{1,64}$")] | None = Field(
        default=None, description="exact, e.g. `user.disable`"
    )
    result: Literal["ok", "denied", "failed"] | None = None
    target_type: Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")] | None = None
    target_id: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    since: AwareDatetime | None = Field(default=None, description="inclusive, ISO 8601 with zone")
    until: AwareDatetime | None = Field(default=None, description="exclusive, ISO 8601 with zone")

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        since = info.data.get("since")
        if until is not None and since is not None and until <= since:
            raise ValueError("until must be after since")
        return until


class AuditEntry(BaseModel):
    id: int
    actor_kind: str
    actor_id: int | None
    actor_name: str
    action: str
    target_type: str
    target_id: str
    result: str
    ip: str
    user_agent: str
    request_id: str
    details: dict[str, Any]
    created_at: dt.datetime


class AuditPage(BaseModel):
    items: list[AuditEntry]
    total: int
    page: int
    size: int


def audit_out(row: AuditLog) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        actor_kind=row.actor_kind,
        actor_id=row.actor_id,
        actor_name=row.actor_name,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        result=row.result,
        ip=row.ip,
        user_agent=row.user_agent,
        request_id=row.request_id,
        details=dict(row.details),
        created_at=row.created_at,
    )


@api.get(
    "/api/admin/audit",
    summary="The audit log, newest first, paged",
    query=AuditQuery,
    response=AuditPage,
)
async def list_audit(request: web.Request, query: AuditQuery) -> AuditPage:
    where = audit.AuditFilter(
        actor_id=query.actor_id,
        actor_kind=query.actor_kind,
        action=query.action,
        result=query.result,
        target_type=query.target_type,
        target_id=query.target_id,
        since=query.since,
        until=query.until,
    )
    page = await audit.list_audit(query.paging, where)
    return page_out(AuditPage, page, audit_out)
