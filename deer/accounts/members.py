"""Members (shoppers) as admins see them: list, read, change profile or condition."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from deer.accounts.admin_common import Page, Paging, field_changes, paged
from deer.accounts.audit import Actor, record_by
from deer.accounts.models import Member, MemberCondition
from deer.accounts.sessions import Sessions
from deer.errors import NotFound


class MemberChanges(TypedDict, total=False):
    name: str
    avatar: str | None
    condition: MemberCondition


async def list_members(
    paging: Paging, q: str | None = None, condition: MemberCondition | None = None
) -> Page[Member]:
    query = Member.all()
    if q:
        query = query.filter(Q(name__icontains=q) | Q(mobile__contains=q))
    if condition is not None:
        query = query.filter(condition=condition)
    members, total = await paged(query, paging, "-id")
    return Page(members, total, paging.page, paging.size)


async def get_member(member_id: int) -> Member:
    member = await Member.get_or_none(id=member_id)
    if member is None:
        raise NotFound(f"no member has the id {member_id}")
    return member


async def update_member(
    actor: Actor, sessions: Sessions, member_id: int, wanted: MemberChanges
) -> Member:
    """Change a member's profile or condition; freezing ends their sessions at once."""
    async with in_transaction():
        member = await Member.filter(id=member_id).select_for_update().first()
        if member is None:
            raise NotFound(f"no member has the id {member_id}")
        current = {name: getattr(member, name) for name in wanted}
        changes = field_changes(current, dict(wanted))
        if changes:
            values = {name: value for name, value in wanted.items() if name in changes}
            await Member.filter(id=member_id).update(**values, updated_at=dt.datetime.now(dt.UTC))
            await record_by(actor, "member.update", "member", member_id, changes=changes)
    if "condition" in changes and wanted.get("condition") == MemberCondition.FROZEN:
        await sessions.end_all_sessions("member", member_id)
    return await get_member(member_id)
