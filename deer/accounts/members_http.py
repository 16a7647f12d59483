"""Admin endpoints of members (shoppers): list, read, change name, avatar or condition."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints, field_validator

from deer import keys
from deer.accounts import members
from deer.accounts.admin_common_http import (
    ID,
    Name,
    PageQuery,
    Search,
    Strict,
    actor_of,
    page_out,
    path_id,
    reject_null,
)
from deer.accounts.models import Member, MemberCondition
from deer.web.api import Api

api = Api(tags=["admin"])

Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=512, pattern=r"^https?://[^\s]+$"),
]


class MemberQuery(PageQuery):
    q: Search | None = Field(default=None, description="part of the name or mobile")
    condition: MemberCondition | None = None


class MemberPatch(Strict):
    name: Name | None = None
    avatar: Url | None = Field(default=None, description="an http(s) URL; null removes it")
    condition: MemberCondition | None = Field(
        default=None, description="`frozen` ends the member's sessions and blocks sign-in"
    )

    _present = field_validator("name", "condition")(reject_null)


class AdminMember(BaseModel):
    id: int
    mobile: str | None
    name: str
    avatar: str | None
    condition: MemberCondition
    level: int
    points: int
    total_spent: int = Field(description="fen")
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
        wechat_bound=member.wechat_openid is not None,
        last_login_at=member.last_login_at,
        last_login_ip=member.last_login_ip,
        created_at=member.created_at,
        updated_at=member.updated_at,
    )


@api.get(
    "/api/admin/members",
    summary="Members (shoppers), newest first, paged",
    query=MemberQuery,
    response=AdminMemberPage,
)
async def list_members(request: web.Request, query: MemberQuery) -> AdminMemberPage:
    page = await members.list_members(query.paging, query.q, query.condition)
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
