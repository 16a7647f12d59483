"""A member's own endpoints (`/api/members/me`): profile, membership standing, points ledger.

Only members have these: the policy allows the `member` role, and a staff caller (whatever
roles an admin gave them) is refused, since a staff id names no member.
"""

from __future__ import annotations

import datetime as dt
from typing import cast

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from deer import keys
from deer.accounts import members, points
from deer.accounts.admin_common_http import Name, PageQuery, Strict, actor_of, page_out, reject_null
from deer.accounts.members_http import PointsEntryOut, Url
from deer.accounts.models import Member, MemberCondition
from deer.web.api import Api
from deer.web.auth import principal_of

api = Api(tags=["members"], callers="members")


class ProfilePatch(Strict):
    name: Name | None = None
    avatar: Url | None = Field(default=None, description="an http(s) URL; null removes it")

    _present = field_validator("name")(reject_null)


class NextLevelOut(BaseModel):
    level: int
    spend: int = Field(description="cumulative spend (fen) the level starts at")
    missing: int = Field(description="fen still to spend")


class Membership(BaseModel):
    id: int
    mobile: str | None
    name: str
    avatar: str | None
    condition: MemberCondition
    level: int
    points: int
    total_spent: int = Field(description="fen, paid minus refunded")
    paid_orders: int
    next_level: NextLevelOut | None = Field(description="null at the top level")
    wechat_bound: bool
    created_at: dt.datetime


class MyPointsPage(BaseModel):
    items: list[PointsEntryOut]
    total: int
    page: int
    size: int


def member_id_of(request: web.Request) -> int:
    return principal_of(request).id  # the routes are declared members-only


def membership_out(member: Member, thresholds: tuple[int, ...]) -> Membership:
    following = points.next_level(member.total_spent, thresholds)
    return Membership(
        id=member.id,
        mobile=member.mobile,
        name=member.name,
        avatar=member.avatar,
        condition=member.condition,
        level=member.level,
        points=member.points,
        total_spent=member.total_spent,
        paid_orders=member.paid_orders,
        next_level=(
            NextLevelOut(level=following.level, spend=following.spend, missing=following.missing)
            if following is not None
            else None
        ),
        wechat_bound=member.wechat_openid is not None,
        created_at=member.created_at,
    )


@api.get(
    "/api/members/me",
    summary="My membership: profile, condition, level, points, spend and the next level",
    response=Membership,
    errors=(404,),
)
async def get_me(request: web.Request) -> Membership:
    member = await members.get_member(member_id_of(request))
    return membership_out(member, request.app[keys.SETTINGS].member_level_thresholds)


@api.patch(
    "/api/members/me",
    summary="Change my name or avatar",
    body=ProfilePatch,
    response=Membership,
    errors=(404,),
)
async def update_me(request: web.Request, body: ProfilePatch) -> Membership:
    member_id = member_id_of(request)
    wanted = cast(members.MemberChanges, body.model_dump(exclude_unset=True))
    sessions = request.app[keys.SESSIONS]
    member = await members.update_member(actor_of(request), sessions, member_id, wanted)
    return membership_out(member, request.app[keys.SETTINGS].member_level_thresholds)


@api.get(
    "/api/members/me/points",
    summary="My points ledger, newest first, paged",
    query=PageQuery,
    response=MyPointsPage,
    errors=(404,),
)
async def list_my_points(request: web.Request, query: PageQuery) -> MyPointsPage:
    page = await points.list_entries(member_id_of(request), query.paging)
    return page_out(MyPointsPage, page, PointsEntryOut.model_validate)
