"""Admin endpoints of the organisation: departments (flat and as a tree), positions, roles.
Every write is in the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, cast

from aiohttp import web
from pydantic import BaseModel, Field, field_validator

from deer import keys
from deer.accounts import org
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
from deer.web.api import Api

api = Api(tags=["admin"])

Sort = Annotated[int, Field(ge=-1_000_000, le=1_000_000)]
Headcount = Annotated[int, Field(ge=0, le=100_000)]


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

    _present = field_validator("name", "sort")(reject_null)


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
        manager=ref_out(view.manager),
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
    return page_out(AdminDepartmentPage, page, department_out)


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

    _present = field_validator("name", "headcount")(reject_null)


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
        department=ref_out(view.department),
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
    return page_out(AdminPositionPage, page, position_out)


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
    return page_out(AdminRolePage, page, role_out)


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
