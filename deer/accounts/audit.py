"""The audit log: who did what to what, from where, and how it ended."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from deer.accounts.models import AuditLog

log = logging.getLogger(__name__)

Result = Literal["ok", "denied", "failed"]


@dataclass(frozen=True)
class Origin:
    """Where a request came from, as the HTTP layer saw it."""

    ip: str = ""
    user_agent: str = ""
    request_id: str = ""


SYSTEM = Origin()


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
