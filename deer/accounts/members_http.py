"""Admin endpoints of members (shoppers): list, read, change name, avatar, condition or tags;
staff notes; the points ledger and staff adjustments of points."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, cast

from aiohttp import web
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from deer import keys
from deer.accounts import members, points
from deer.accounts.admin_common import invalid
from deer.accounts.admin_common_http import (
    BIGINT_MAX,
    ID,
    AdminRef,
    Name,
    PageQuery,
    Search,
    Strict,
    actor_of,
    page_out,
    path_id,
    printable,
    ref_out,
    reject_null,
)
from deer.accounts.models import Member, MemberCondition, PointsEntry
from deer.accounts.points import PointsKind
from deer.web.api import Api

api = Api(tags=["admin"])

IDEMPOTENCY_KEY: Final = "Idempotency-Key"
_KEY: Final = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_NOTE_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # keeps \t \n \r
MAX_DELTA: Final = 10**12

Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=512, pattern=r"^https?://[^\s]+$"),
]
Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=members.MAX_TAG_LENGTH),
    AfterValidator(printable),
]
Level = Annotated[int, Field(ge=0, le=32_767)]
Fen = Annotated[int, Field(ge=0, le=BIGINT_MAX, description="fen")]
Key = Annotated[str, StringConstraints(pattern=f"^{_KEY.pattern}$")]


def _unique_tags(tags: list[str]) -> list[str]:
    unique = list(dict.fromkeys(tags))
    if len(unique) > members.MAX_TAGS:
        raise ValueError(f"at most {members.MAX_TAGS} different tags")
    return unique


def _note_text(value: str) -> str:
    if _NOTE_CONTROL.search(value):
        raise ValueError("control characters other than tabs and line breaks are not allowed")
    return value


class MemberQuery(PageQuery):
    q: Search | None = Field(default=None, description="part of the name or mobile")
    condition: MemberCondition | None = None
    tag: Tag | None = Field(default=None, description="members carrying this tag")
    level: Level | None = None
    min_spent: Fen | None = Field(default=None, description="cumulative spend at least (fen)")
    max_spent: Fen | None = Field(default=None, description="cumulative spend at most (fen)")

    @field_validator("max_spent")
    @classmethod
    def _not_below_min(cls, max_spent: int | None, info: ValidationInfo) -> int | None:
        min_spent = info.data.get("min_spent")
        if max_spent is not None and min_spent is not None and max_spent < min_spent:
            raise ValueError("max_spent must not be below min_spent")
        return max_spent

    @property
    def where(self) -> members.MemberFilter:
        return members.MemberFilter(
            q=self.q,
            condition=self.condition,
            tag=self.tag,
            level=self.level,
            min_spent=self.min_spent,
            max_spent=self.max_spent,
        )


class MemberPatch(Strict):
    name: Name | None = None
    avatar: Url | None = Field(default=None, description="an http(s) URL; null removes it")
    condition: MemberCondition | None = Field(
        default=None, description="`frozen` ends the member's sessions and blocks sign-in"
    )

    _present = field_validator("name", "condition")(reject_null)


class TagsIn(Strict):
    tags: Annotated[list[Tag], AfterValidator(_unique_tags)] = Field(
        description=f"the complete set: at most {members.MAX_TAGS}, each 1-"
        f"{members.MAX_TAG_LENGTH} characters; trimmed, duplicates dropped, order kept"
    )


class NoteIn(Strict):
    body: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=members.MAX_NOTE_LENGTH),
        AfterValidator(_note_text),
    ]


class AdjustIn(Strict):
    delta: int = Field(ge=-MAX_DELTA, le=MAX_DELTA, description="points to add (negative: take)")
    reason: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=256),
        AfterValidator(printable),
    ]
    ref: Key | None = Field(
        default=None,
        description=f"the idempotency key, unless sent as the `{IDEMPOTENCY_KEY}` header: "
        "a retried request with the same key applies once",
    )

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, delta: int) -> int:
        if delta == 0:
            raise ValueError("must not be 0")
        return delta


class AdminMember(BaseModel):
    id: int
    mobile: str | None
    name: str
    avatar: str | None
    condition: MemberCondition
    level: int
    points: int
    total_spent: int = Field(description="fen, paid minus refunded")
    paid_orders: int
    tags: list[str]
    wechat_bound: bool
    last_login_at: dt.datetime | None
    last_login_ip: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AdminMemberPage(BaseModel):
    items: list[AdminMember]
    total: int
    page: int
    size: int


class NoteOut(BaseModel):
    id: int
    body: str
    author: AdminRef | None = Field(description="null once the author's account is gone")
    created_at: dt.datetime


class NotePage(BaseModel):
    items: list[NoteOut]
    total: int
    page: int
    size: int


class PointsEntryOut(BaseModel):
    """One ledger entry; `model_validate(points_entry_row)` reads it from the row."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: PointsKind
    points: int = Field(description="signed")
    amount: int = Field(description="fen paid (earn) or refunded (revoke); 0 for adjustments")
    order_id: int | None
    note: str = Field(description="the reason of an adjustment")
    created_at: dt.datetime


class AdminPointsEntry(PointsEntryOut):
    ref: str = Field(description="`order:<id>`, `refund:<no>` or the adjustment's key")


class AdminPointsPage(BaseModel):
    items: list[AdminPointsEntry]
    total: int
    page: int
    size: int


class Adjustment(BaseModel):
    entry: AdminPointsEntry
    points: int = Field(description="the member's balance now")
    applied: bool = Field(description="false: a retry of an applied request; nothing changed")


def member_out(member: Member) -> AdminMember:
    return AdminMember(
        id=member.id,
        mobile=member.mobile,
        name=member.name,
        avatar=member.avatar,
        condition=member.condition,
        level=member.level,
        points=member.points,
        total_spent=member.total_spent,
        paid_orders=member.paid_orders,
        tags=member.tags,
        wechat_bound=member.wechat_openid is not None,
        last_login_at=member.last_login_at,
        last_login_ip=member.last_login_ip,
        created_at=member.created_at,
        updated_at=member.updated_at,
    )


def note_out(note: members.Note) -> NoteOut:
    return NoteOut(
        id=note.id, body=note.body, author=ref_out(note.author), created_at=note.created_at
    )


def entry_out(entry: PointsEntry) -> AdminPointsEntry:
    return AdminPointsEntry.model_validate(entry)


def idempotency_key(request: web.Request, body: AdjustIn) -> str:
    """The key of an adjustment: the header or the body's `ref` (the same if both)."""
    header = request.headers.get(IDEMPOTENCY_KEY)
    if header is not None and not _KEY.fullmatch(header):
        raise invalid(IDEMPOTENCY_KEY, f"1-64 characters of A-Z a-z 0-9 . _ : - ({header!r})")
    if header is not None and body.ref is not None and header != body.ref:
        raise invalid("ref", f"differs from the {IDEMPOTENCY_KEY} header")
    key = header or body.ref
    if key is None:
        raise invalid("ref", f"send an {IDEMPOTENCY_KEY} header or a ref, so a retry applies once")
    return key


# --- members -------------------------------------------------------------------------------


@api.get(
    "/api/admin/members",
    summary="Members (shoppers), newest first, paged",
    query=MemberQuery,
    response=AdminMemberPage,
)
async def list_members(request: web.Request, query: MemberQuery) -> AdminMemberPage:
    page = await members.list_members(query.paging, query.where)
    return page_out(AdminMemberPage, page, member_out)


@api.get(f"/api/admin/members/{ID}", summary="One member", response=AdminMember, errors=(404,))
async def get_member(request: web.Request) -> AdminMember:
    return member_out(await members.get_member(path_id(request)))


@api.patch(
    f"/api/admin/members/{ID}",
    summary="Change a member's name, avatar or condition (frozen: signed out, cannot sign in)",
    body=MemberPatch,
    response=AdminMember,
    errors=(404,),
)
async def update_member(request: web.Request, body: MemberPatch) -> AdminMember:
    wanted = cast(members.MemberChanges, body.model_dump(exclude_unset=True))
    member = await members.update_member(
        actor_of(request), request.app[keys.SESSIONS], path_id(request), wanted
    )
    return member_out(member)


@api.put(
    f"/api/admin/members/{ID}/tags",
    summary="Replace a member's tags",
    body=TagsIn,
    response=AdminMember,
    errors=(404,),
)
async def set_tags(request: web.Request, body: TagsIn) -> AdminMember:
    return member_out(await members.set_tags(actor_of(request), path_id(request), body.tags))


# --- notes ---------------------------------------------------------------------------------


@api.get(
    f"/api/admin/members/{ID}/notes",
    summary="Staff notes on a member, newest first, paged",
    query=PageQuery,
    response=NotePage,
    errors=(404,),
)
async def list_notes(request: web.Request, query: PageQuery) -> NotePage:
    page = await members.list_notes(path_id(request), query.paging)
    return page_out(NotePage, page, note_out)


@api.post(
    f"/api/admin/members/{ID}/notes",
    summary="Write a note on a member (you are its author)",
    body=NoteIn,
    response=NoteOut,
    status=201,
    errors=(404,),
)
async def add_note(request: web.Request, body: NoteIn) -> NoteOut:
    return note_out(await members.add_note(actor_of(request), path_id(request), body.body))


@api.delete(
    f"/api/admin/members/{ID}/notes/{{note_id}}",
    summary="Delete a note (its author or an admin)",
    status=204,
    errors=(403, 404),
)
async def delete_note(request: web.Request) -> web.Response:
    await members.delete_note(actor_of(request), path_id(request), path_id(request, "note_id"))
    return web.Response(status=204)


# --- points --------------------------------------------------------------------------------


@api.get(
    f"/api/admin/members/{ID}/points",
    summary="A member's points ledger, newest first, paged",
    query=PageQuery,
    response=AdminPointsPage,
    errors=(404,),
)
async def list_points(request: web.Request, query: PageQuery) -> AdminPointsPage:
    page = await points.list_entries(path_id(request), query.paging)
    return page_out(AdminPointsPage, page, entry_out)


@api.post(
    f"/api/admin/members/{ID}/points",
    summary=f"Add or take points with a reason; send an `{IDEMPOTENCY_KEY}` header (or `ref`) "
    "so a retried request applies once",
    body=AdjustIn,
    response=Adjustment,
    status=201,
    errors=(404, 409),
)
async def adjust_points(request: web.Request, body: AdjustIn) -> Adjustment:
    key = idempotency_key(request, body)
    adjusted = await points.adjust_points(
        actor_of(request), path_id(request), body.delta, body.reason, key
    )
    return Adjustment(
        entry=entry_out(adjusted.entry), points=adjusted.points, applied=adjusted.applied
    )
