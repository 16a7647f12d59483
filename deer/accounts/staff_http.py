"""Admin endpoints of staff users: list (a manager sees their department subtree), create,
change, roles, disable and enable, password reset. Every write is in the audit log."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Final, cast

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from deer import keys
from deer.accounts import staff
from deer.accounts.admin_common_http import (
    ID,
    AdminRef,
    Id,
    Name,
    PageQuery,
    RoleCode,
    Search,
    Strict,
    actor_of,
    page_out,
    path_id,
    ref_out,
    reject_null,
)
from deer.accounts.models import UserStatus
from deer.web.api import Api
from deer.web.auth import principal_of

api = Api(tags=["admin"])

MAX_ROLES: Final = 20
EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _email(value: str) -> str:
    if not EMAIL.fullmatch(value):
        raise ValueError("not an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{3,32}$")]
Mobile = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^1[3-9][0-9]{9}$")]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class UserQuery(PageQuery):
    q: Search | None = Field(default=None, description="part of the username, name or mobile")
    department_id: Id | None = None
    include_subdepartments: bool = Field(
        default=False, description="with department_id: its subdepartments' users too"
    )
    role: RoleCode | None = None
    status: UserStatus | None = None


class UserIn(Strict):
    username: Username = Field(description="3–32 letters, digits, `_`, `.` or `-`")
    name: Name
    password: Password = Field(description="at least 8 characters, not only digits")
    mobile: Mobile | None = Field(default=None, description="a mainland China mobile number")
    email: Email | None = None
    department_id: Id | None = None
    position_id: Id | None = None
    roles: list[RoleCode] = Field(default_factory=list, max_length=MAX_ROLES)


class UserPatch(Strict):
    """Only the fields sent change; `null` clears an optional one."""

    name: Name | None = None
    mobile: Mobile | None = None
    email: Email | None = None
    department_id: Id | None = Field(
        default=None, description="moving a user ends their sessions (their data scope changes)"
    )
    position_id: Id | None = None

    _present = field_validator("name")(reject_null)


class RolesIn(Strict):
    roles: list[RoleCode] = Field(max_length=MAX_ROLES, description="the complete new role set")


class PasswordResetIn(Strict):
    password: Password = Field(description="at least 8 characters, not only digits")


class AdminUser(BaseModel):
    id: int
    username: str
    name: str
    mobile: str | None
    email: str | None
    status: UserStatus
    roles: list[str]
    department: AdminRef | None
    position: AdminRef | None
    last_login_at: dt.datetime | None
    last_login_ip: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class AdminUserPage(BaseModel):
    items: list[AdminUser]
    total: int
    page: int
    size: int


def user_out(view: staff.UserView) -> AdminUser:
    user = view.user
    return AdminUser(
        id=user.id,
        username=user.username,
        name=user.name,
        mobile=user.mobile,
        email=user.email,
        status=user.status,
        roles=list(view.roles),
        department=ref_out(view.department),
        position=ref_out(view.position),
        last_login_at=user.last_login_at,
        last_login_ip=user.last_login_ip,
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


@api.get(
    "/api/admin/users",
    summary="Staff users, paged; a manager sees their department subtree",
    query=UserQuery,
    response=AdminUserPage,
)
async def list_users(request: web.Request, query: UserQuery) -> AdminUserPage:
    where = staff.UserFilter(
        q=query.q,
        department_id=query.department_id,
        include_subdepartments=query.include_subdepartments,
        role=query.role,
        status=query.status,
    )
    page = await staff.list_users(principal_of(request), query.paging, where)
    return page_out(AdminUserPage, page, user_out)


@api.post(
    "/api/admin/users",
    summary="Create a staff user with roles",
    body=UserIn,
    response=AdminUser,
    status=201,
    errors=(409,),
)
async def create_user(request: web.Request, body: UserIn) -> AdminUser:
    new = staff.NewUser(
        username=body.username,
        name=body.name,
        password=body.password,
        mobile=body.mobile,
        email=body.email,
        department_id=body.department_id,
        position_id=body.position_id,
        roles=tuple(body.roles),
    )
    return user_out(await staff.create_user(actor_of(request), new))


@api.get(f"/api/admin/users/{ID}", summary="One staff user", response=AdminUser, errors=(404,))
async def get_user(request: web.Request) -> AdminUser:
    return user_out(await staff.get_user(principal_of(request), path_id(request)))


@api.patch(
    f"/api/admin/users/{ID}",
    summary="Change a staff user's profile, department or position",
    body=UserPatch,
    response=AdminUser,
    errors=(404, 409),
)
async def update_user(request: web.Request, body: UserPatch) -> AdminUser:
    wanted = cast(staff.UserChanges, body.model_dump(exclude_unset=True))
    view = await staff.update_user(
        actor_of(request), request.app[keys.SESSIONS], path_id(request), wanted
    )
    return user_out(view)


@api.put(
    f"/api/admin/users/{ID}/roles",
    summary="Replace a user's roles; their sessions end so the new roles apply at once",
    body=RolesIn,
    response=AdminUser,
    errors=(404, 409),
)
async def replace_roles(request: web.Request, body: RolesIn) -> AdminUser:
    view = await staff.replace_roles(
        actor_of(request), request.app[keys.SESSIONS], path_id(request), body.roles
    )
    return user_out(view)


@api.post(
    f"/api/admin/users/{ID}/disable",
    summary="Disable a user: every session ends at once and sign-in is refused",
    response=AdminUser,
    errors=(404, 409),
)
async def disable_user(request: web.Request) -> AdminUser:
    view = await staff.disable_user(actor_of(request), request.app[keys.SESSIONS], path_id(request))
    return user_out(view)


@api.post(
    f"/api/admin/users/{ID}/enable",
    summary="Enable a disabled user",
    response=AdminUser,
    errors=(404,),
)
async def enable_user(request: web.Request) -> AdminUser:
    return user_out(await staff.enable_user(actor_of(request), path_id(request)))


@api.post(
    f"/api/admin/users/{ID}/password",
    summary="Set a new password for a user; every session of theirs ends",
    body=PasswordResetIn,
    status=204,
    errors=(404,),
)
async def reset_password(request: web.Request, body: PasswordResetIn) -> web.Response:
    await staff.reset_password(
        actor_of(request), request.app[keys.SESSIONS], path_id(request), body.password
    )
    return web.Response(status=204)
