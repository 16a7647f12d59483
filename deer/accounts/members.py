"""Members (shoppers) as staff see them: list, read, change profile, condition and tags; staff
notes on members. Points and spend live in `deer.accounts.points`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final, TypedDict

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from deer.accounts.admin_common import (
    FOREIGN_KEY_VIOLATION,
    Page,
    Paging,
    Ref,
    field_changes,
    locked_row,
    paged,
    refs,
    violation,
)
from deer.accounts.audit import Actor, record_by
from deer.accounts.errors import NotNoteAuthor
from deer.accounts.models import Member, MemberCondition, MemberNote, User
from deer.accounts.sessions import Sessions
from deer.errors import NotFound

MAX_TAGS: Final = 20
MAX_TAG_LENGTH: Final = 20
MAX_NOTE_LENGTH: Final = 2_000


class MemberChanges(TypedDict, total=False):
    name: str
    avatar: str | None
    condition: MemberCondition


@dataclass(frozen=True)
class MemberFilter:
    q: str | None = None  # part of the name or mobile
    condition: MemberCondition | None = None
    tag: str | None = None
    level: int | None = None
    min_spent: int | None = None  # fen, inclusive
    max_spent: int | None = None  # fen, inclusive


async def list_members(paging: Paging, where: MemberFilter) -> Page[Member]:
    query = Member.all()
    if where.q:
        query = query.filter(Q(name__icontains=where.q) | Q(mobile__contains=where.q))
    if where.condition is not None:
        query = query.filter(condition=where.condition)
    if where.tag is not None:
        query = query.filter(tags__contains=[where.tag])
    if where.level is not None:
        query = query.filter(level=where.level)
    if where.min_spent is not None:
        query = query.filter(total_spent__gte=where.min_spent)
    if where.max_spent is not None:
        query = query.filter(total_spent__lte=where.max_spent)
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


async def set_tags(actor: Actor, member_id: int, tags: list[str]) -> Member:
    """Replace a member's tags (already trimmed and de-duplicated, in the order given)."""
    async with in_transaction():
        current = await locked_row(Member, "member", member_id, "tags")
        changes = field_changes(current, {"tags": tags})
        if changes:
            await Member.filter(id=member_id).update(tags=tags, updated_at=dt.datetime.now(dt.UTC))
            await record_by(actor, "member.tags", "member", member_id, changes=changes)
    return await get_member(member_id)


# --- notes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    id: int
    body: str
    author: Ref | None  # None once the author's account is gone
    created_at: dt.datetime


async def list_notes(member_id: int, paging: Paging) -> Page[Note]:
    """A member's notes, newest first."""
    await get_member(member_id)
    rows, total = await paged(MemberNote.filter(member_id=member_id), paging, "-id")
    authors = await refs(User, (row.author_id for row in rows))
    notes = [_note(row, authors) for row in rows]
    return Page(notes, total, paging.page, paging.size)


def _note(row: MemberNote, authors: dict[int, Ref]) -> Note:
    author = authors.get(row.author_id) if row.author_id is not None else None
    return Note(row.id, row.body, author, row.created_at)


async def add_note(actor: Actor, member_id: int, body: str) -> Note:
    author_id = actor.principal.id
    async with in_transaction():
        try:
            row = await MemberNote.create(member_id=member_id, author_id=author_id, body=body)
        except IntegrityError as exc:
            if violation(exc)[0] == FOREIGN_KEY_VIOLATION:
                raise NotFound(f"no member has the id {member_id}") from None
            raise
        await record_by(actor, "member.note.add", "member", member_id, note_id=row.id)
    return _note(row, await refs(User, [author_id]))


async def delete_note(actor: Actor, member_id: int, note_id: int) -> None:
    """Delete a note: its author or an admin may (the audit record keeps its text)."""
    principal = actor.principal
    async with in_transaction():
        row = await MemberNote.filter(id=note_id, member_id=member_id).select_for_update().first()
        if row is None:
            raise NotFound(f"member {member_id} has no note with the id {note_id}")
        if not (principal.is_admin or row.author_id == principal.id):
            raise NotNoteAuthor()
        await MemberNote.filter(id=note_id).delete()
        await record_by(
            actor, "member.note.delete", "member", member_id, note_id=note_id, body=row.body
        )
