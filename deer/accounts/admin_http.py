"""Admin endpoints: staff users, departments, positions, roles, members, the audit log.

Who may call what is casbin's business (`config/policy.csv`: admins everything, managers read
users, departments and positions, staff read members); a manager sees the users of their
department subtree only. Every write is in the audit log.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Final, Literal, cast

from aiohttp import web
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from deer import keys
from deer.accounts import admin_common, audit, members, org, staff
from deer.accounts.admin_common import Paging
from deer.accounts.audit import Actor
from deer.accounts.http import origin_of
from deer.accounts.models import AuditLog, Member, MemberCondition, UserStatus
from deer.errors import NotFound
from deer.web.api import Api
from deer.web.auth import principal_of

api = Api(tags=["admin"])

BIGINT_MAX: Final = 2**63 - 1
MAX_PAGE: Final = 100_000
MAX_ROLES: Final = 20
ID: Final = "{id}"
DIGITS: Final = re.compile(r"[0-9]{1,19}")
EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


def _email(value: str) -> str:
    if not EMAIL.fullmatch(value):
        raise ValueError("not an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


def _reject_null(value: object) -> object:
    if value is None:
        raise ValueError("cannot be null")
    return value


Id = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_printable),
]
Search = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    AfterValidator(_printable),
]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.\-]{3,32}$")]
Mobile = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^1[3-9][0-9]{9}$")]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_email)
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
RoleCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,31}$")]
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=512, pattern=r"^https?://[^\s]+$"),
]
Sort = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
Headcount = Annotated[int, Field(ge=0, le=100_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PageQuery(Strict):
    page: int = Field(default=1, ge=1, le=MAX_PAGE)
    size: int = Field(default=20, ge=1, le=100, description="at most 100")

    @property
    def paging(self) -> Paging:
        return Paging(self.page, self.size)


class AdminRef(BaseModel):
    id: int
    name: str


def actor_of(request: web.Request) -> Actor:
    return Actor(principal_of(request), origin_of(request))


def path_id(request: web.Request) -> int:
    """The `{id}` of the path; anything but a bigint names no row (404, like a missing one)."""
    raw = request.match_info["id"]
    if not DIGITS.fullmatch(raw) or int(raw) > BIGINT_MAX:
        raise NotFound(f"nothing has the id {raw!r}")
    return int(raw)


def _ref(ref: admin_common.Ref | None) -> AdminRef | None:
    return AdminRef(id=ref.id, name=ref.name) if ref is not None else None


# --- staff users -------------------------------------------------------------------------


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

    _present = field_validator("name")(_reject_null)


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
        department=_ref(view.department),
        position=_ref(view.position),
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
    return AdminUserPage(
        items=[user_out(view) for view in page.items],
        total=page.total,
        page=page.page,
        size=page.size,
    )


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


# --- departments -------------------------------------------------------------------------


class DepartmentQuery(PageQuery):
    q: Search | None = Field(default=None, description="part of the name")
    parent_id: Id | None = Field(default=None, description="only the children of this one")


class DepartmentIn(Strict):
    name: Name
    parent_id: Id | None = Field(default=None, description="none: a top-level department")
    manager_id: Id | None = None
    sort: Sort = 0


class DepartmentPatch(Strict):
    """Only the fields sent change; `parent_id: null` makes it top-level."""

    name: Name | None = None
    parent_id: Id | None = None
    manager_id: Id | None = None
    sort: Sort | None = None

    _present = field_validator("name", "sort")(_reject_null)


class AdminDepartment(BaseModel):
    id: int
    name: str
    parent_id: int | None
    manager: AdminRef | None
    sort: int
    user_count: int = Field(description="users directly in this department")
    created_at: dt.datetime


class AdminDepartmentPage(BaseModel):
    items: list[AdminDepartment]
    total: int
    page: int
    size: int


class AdminDepartmentNode(AdminDepartment):
    children: list[AdminDepartmentNode]


class AdminDepartmentTree(BaseModel):
    items: list[AdminDepartmentNode] = Field(description="the top-level departments")


def department_out(view: org.DepartmentView) -> AdminDepartment:
    return AdminDepartment(
        id=view.id,
        name=view.name,
        parent_id=view.parent_id,
        manager=_ref(view.manager),
        sort=view.sort,
        user_count=view.user_count,
        created_at=view.created_at,
    )


def node_out(node: org.DepartmentNode) -> AdminDepartmentNode:
    return AdminDepartmentNode(
        **department_out(node.department).model_dump(),
        children=[node_out(child) for child in node.children],
    )


@api.get(
    "/api/admin/departments",
    summary="Departments as a flat list (with parent_id), paged",
    query=DepartmentQuery,
    response=AdminDepartmentPage,
)
async def list_departments(request: web.Request, query: DepartmentQuery) -> AdminDepartmentPage:
    page = await org.list_departments(query.paging, query.q, query.parent_id)
    return AdminDepartmentPage(
        items=[department_out(view) for view in page.items],
        total=page.total,
        page=page.page,
        size=page.size,
    )


@api.get(
    "/api/admin/departments/tree",
    summary="Every department, nested under its parent in sort order",
    response=AdminDepartmentTree,
)
async def department_tree(request: web.Request) -> AdminDepartmentTree:
    return AdminDepartmentTree(items=[node_out(node) for node in await org.department_tree()])


@api.get(
    f"/api/admin/departments/{ID}",
    summary="One department",
    response=AdminDepartment,
    errors=(404,),
)
async def get_department(request: web.Request) -> AdminDepartment:
    return department_out(await org.get_department(path_id(request)))


@api.post(
    "/api/admin/departments",
    summary="Create a department",
    body=DepartmentIn,
    response=AdminDepartment,
    status=201,
    errors=(409,),
)
async def create_department(request: web.Request, body: DepartmentIn) -> AdminDepartment:
    view = await org.create_department(
        actor_of(request), body.name, body.parent_id, body.manager_id, body.sort
    )
    return department_out(view)


@api.patch(
    f"/api/admin/departments/{ID}",
    summary="Rename, move, reorder a department or change its manager",
    body=DepartmentPatch,
    response=AdminDepartment,
    errors=(404, 409),
)
async def update_department(request: web.Request, body: DepartmentPatch) -> AdminDepartment:
    wanted = cast(org.DepartmentChanges, body.model_dump(exclude_unset=True))
    return department_out(await org.update_department(actor_of(request), path_id(request), wanted))


@api.delete(
    f"/api/admin/departments/{ID}",
    summary="Delete an empty department (no subdepartments, users or positions)",
    status=204,
    errors=(404, 409),
)
async def delete_department(request: web.Request) -> web.Response:
    await org.delete_department(actor_of(request), path_id(request))
    return web.Response(status=204)


# --- positions ---------------------------------------------------------------------------


class PositionQuery(PageQuery):
    q: Search | None = Field(default=None, description="part of the name")
    department_id: Id | None = None


class PositionIn(Strict):
    name: Name
    department_id: Id | None = None
    headcount: Headcount = Field(default=1, description="how many people the position plans for")


class PositionPatch(Strict):
    name: Name | None = None
    department_id: Id | None = None
    headcount: Headcount | None = None

    _present = field_validator("name", "headcount")(_reject_null)


class AdminPosition(BaseModel):
    id: int
    name: str
    department: AdminRef | None
    headcount: int
    user_count: int = Field(description="users holding the position")
    created_at: dt.datetime


class AdminPositionPage(BaseModel):
    items: list[AdminPosition]
    total: int
    page: int
    size: int


def position_out(view: org.PositionView) -> AdminPosition:
    return AdminPosition(
        id=view.id,
        name=view.name,
        department=_ref(view.department),
        headcount=view.headcount,
        user_count=view.user_count,
        created_at=view.created_at,
    )


@api.get(
    "/api/admin/positions",
    summary="Positions, paged",
    query=PositionQuery,
    response=AdminPositionPage,
)
async def list_positions(request: web.Request, query: PositionQuery) -> AdminPositionPage:
    page = await org.list_positions(query.paging, query.q, query.department_id)
    return AdminPositionPage(
        items=[position_out(view) for view in page.items],
        total=page.total,
        page=page.page,
        size=page.size,
    )


@api.get(
    f"/api/admin/positions/{ID}", summary="One position", response=AdminPosition, errors=(404,)
)
async def get_position(request: web.Request) -> AdminPosition:
    return position_out(await org.get_position(path_id(request)))


@api.post(
    "/api/admin/positions",
    summary="Create a position",
    body=PositionIn,
    response=AdminPosition,
    status=201,
)
async def create_position(request: web.Request, body: PositionIn) -> AdminPosition:
    view = await org.create_position(
        actor_of(request), body.name, body.department_id, body.headcount
    )
    return position_out(view)


@api.patch(
    f"/api/admin/positions/{ID}",
    summary="Change a position",
    body=PositionPatch,
    response=AdminPosition,
    errors=(404,),
)
async def update_position(request: web.Request, body: PositionPatch) -> AdminPosition:
    wanted = cast(org.PositionChanges, body.model_dump(exclude_unset=True))
    return position_out(await org.update_position(actor_of(request), path_id(request), wanted))


@api.delete(
    f"/api/admin/positions/{ID}",
    summary="Delete a position nobody holds",
    status=204,
    errors=(404, 409),
)
async def delete_position(request: web.Request) -> web.Response:
    await org.delete_position(actor_of(request), path_id(request))
    return web.Response(status=204)


# --- roles -------------------------------------------------------------------------------


class RoleIn(Strict):
    code: RoleCode = Field(description="2–32 of a-z, 0-9 and `_`, starting with a letter")
    name: Name


class RolePatch(Strict):
    name: Name


class AdminRole(BaseModel):
    id: int
    code: str
    name: str
    builtin: bool
    user_count: int


class AdminRolePage(BaseModel):
    items: list[AdminRole]
    total: int
    page: int
    size: int


def role_out(view: org.RoleView) -> AdminRole:
    role = view.role
    return AdminRole(
        id=role.id, code=role.code, name=role.name, builtin=role.builtin, user_count=view.user_count
    )


@api.get(
    "/api/admin/roles",
    summary="Roles with the number of users holding each",
    query=PageQuery,
    response=AdminRolePage,
)
async def list_roles(request: web.Request, query: PageQuery) -> AdminRolePage:
    page = await org.list_roles(query.paging)
    return AdminRolePage(
        items=[role_out(view) for view in page.items],
        total=page.total,
        page=page.page,
        size=page.size,
    )


@api.get(f"/api/admin/roles/{ID}", summary="One role", response=AdminRole, errors=(404,))
async def get_role(request: web.Request) -> AdminRole:
    return role_out(await org.get_role(path_id(request)))


@api.post(
    "/api/admin/roles",
    summary="Create a role (give it rights with policy rules)",
    body=RoleIn,
    response=AdminRole,
    status=201,
    errors=(409,),
)
async def create_role(request: web.Request, body: RoleIn) -> AdminRole:
    return role_out(await org.create_role(actor_of(request), body.code, body.name))


@api.patch(
    f"/api/admin/roles/{ID}",
    summary="Rename a role (its code never changes)",
    body=RolePatch,
    response=AdminRole,
    errors=(404,),
)
async def rename_role(request: web.Request, body: RolePatch) -> AdminRole:
    return role_out(await org.rename_role(actor_of(request), path_id(request), body.name))


@api.delete(
    f"/api/admin/roles/{ID}",
    summary="Delete a role nobody holds, with the policy rules naming it",
    status=204,
    errors=(404, 409),
)
async def delete_role(request: web.Request) -> web.Response:
    await org.delete_role(actor_of(request), request.app[keys.POLICIES], path_id(request))
    return web.Response(status=204)


# --- members -----------------------------------------------------------------------------


class MemberQuery(PageQuery):
    q: Search | None = Field(default=None, description="part of the name or mobile")
    condition: MemberCondition | None = None


class MemberPatch(Strict):
    name: Name | None = None
    avatar: Url | None = Field(default=None, description="an http(s) URL; null removes it")
    condition: MemberCondition | None = Field(
        default=None, description="`frozen` ends the member's sessions and blocks sign-in"
    )

    _present = field_validator("name", "condition")(_reject_null)


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
    return AdminMemberPage(
        items=[member_out(member) for member in page.items],
        total=page.total,
        page=page.page,
        size=page.size,
    )


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


# --- audit log ---------------------------------------------------------------------------


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
    return AuditPage(
        items=[audit_out(row) for row in page.items],
        total=page.total,
        page=page.page,
        size=page.size,
    )
