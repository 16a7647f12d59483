"""The organisation: departments (a tree), positions, roles. Locks and shared pieces:
`deer.accounts.admin_common`; the policy rules a role takes with it: `deer.access.service`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from deer.access.policy import AUTHENTICATED, Policies
from deer.access.scope import department_subtree
from deer.access.service import drop_rules_naming
from deer.accounts.admin_common import (
    FOREIGN_KEY_VIOLATION,
    UNIQUE_VIOLATION,
    Page,
    Paging,
    Ref,
    department_exists,
    field_changes,
    invalid,
    lock_department_tree,
    lock_policies,
    locked_row,
    paged,
    paged_values,
    refs,
    violation,
)
from deer.accounts.audit import Actor, record_by
from deer.accounts.errors import (
    BuiltinRole,
    DepartmentCycle,
    DepartmentNameTaken,
    DepartmentNotEmpty,
    PositionInUse,
    RoleExists,
    RoleInUse,
)
from deer.accounts.models import Department, Position, Role, User, UserStatus
from deer.errors import DeerError, NotFound

# Casbin subjects that are not rows of `role`: every signed-in caller, and the staff group.
RESERVED_ROLE_CODES: Final = frozenset({AUTHENTICATED, "staff"})

# --- departments -------------------------------------------------------------------------


@dataclass(frozen=True)
class DepartmentView:
    id: int
    name: str
    parent_id: int | None
    manager: Ref | None
    sort: int
    user_count: int
    created_at: dt.datetime


@dataclass(frozen=True)
class DepartmentNode:
    department: DepartmentView
    children: list[DepartmentNode] = field(default_factory=list)


class DepartmentChanges(TypedDict, total=False):
    name: str
    parent_id: int | None
    manager_id: int | None
    sort: int


DEPARTMENT_COLUMNS: Final = ("id", "name", "parent_id", "manager_id", "sort", "created_at")


async def _users_per(column: str, ids: list[int]) -> dict[int, int]:
    """How many users each of these departments or positions (`column`) has; absent: none."""
    if not ids:
        return {}
    counted = (
        await User.filter(**{f"{column}__in": ids})
        .annotate(n=Count("id"))
        .group_by(column)
        .values_list(column, "n")
    )
    return {int(row_id): int(n) for row_id, n in counted}


async def _department_views(rows: Sequence[dict[str, Any]]) -> list[DepartmentView]:
    ids = [int(row["id"]) for row in rows]
    managers = await refs(User, (row["manager_id"] for row in rows))
    counts = await _users_per("department_id", ids)
    return [
        DepartmentView(
            id=int(row["id"]),
            name=str(row["name"]),
            parent_id=row["parent_id"],
            manager=managers.get(row["manager_id"] or 0),
            sort=int(row["sort"]),
            user_count=counts.get(int(row["id"]), 0),
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def _manager_ok(manager_id: int | None) -> None:
    if manager_id is None:
        return
    manager = await User.get_or_none(id=manager_id)
    if manager is None:
        raise invalid("manager_id", f"no user has the id {manager_id}")
    if manager.status != UserStatus.ACTIVE:
        raise invalid("manager_id", "a disabled user cannot manage a department")


def _department_conflict(exc: IntegrityError) -> DeerError:
    state, constraint = violation(exc)
    if state == UNIQUE_VIOLATION:
        return DepartmentNameTaken()
    if state == FOREIGN_KEY_VIOLATION and "manager" in constraint:
        return invalid("manager_id", "this user was just deleted")
    if state == FOREIGN_KEY_VIOLATION:
        return invalid("parent_id", "this department was just deleted")
    raise exc


async def list_departments(
    paging: Paging, q: str | None = None, parent_id: int | None = None
) -> Page[DepartmentView]:
    query = Department.all()
    if q:
        query = query.filter(name__icontains=q)
    if parent_id is not None:
        query = query.filter(parent_id=parent_id)
    rows, total = await paged_values(query, paging, DEPARTMENT_COLUMNS, "sort", "id")
    return Page(await _department_views(rows), total, paging.page, paging.size)


async def department_tree() -> list[DepartmentNode]:
    """Every department, nested under its parent, each level in `sort` order."""
    rows = await Department.all().order_by("sort", "id").values(*DEPARTMENT_COLUMNS)
    nodes = {view.id: DepartmentNode(view) for view in await _department_views(rows)}
    roots: list[DepartmentNode] = []
    for node in nodes.values():
        parent = nodes.get(node.department.parent_id or 0)
        (parent.children if parent is not None else roots).append(node)
    return roots


async def get_department(department_id: int) -> DepartmentView:
    rows = await Department.filter(id=department_id).values(*DEPARTMENT_COLUMNS)
    if not rows:
        raise NotFound(f"no department has the id {department_id}")
    return (await _department_views(rows))[0]


async def create_department(
    actor: Actor, name: str, parent_id: int | None, manager_id: int | None, sort: int
) -> DepartmentView:
    await department_exists(parent_id, "parent_id")
    await _manager_ok(manager_id)
    try:
        async with in_transaction():
            department = await Department.create(
                name=name, parent_id=parent_id, manager_id=manager_id, sort=sort
            )
            await record_by(
                actor,
                "department.create",
                "department",
                department.id,
                name=name,
                parent_id=parent_id,
            )
    except IntegrityError as exc:
        raise _department_conflict(exc) from None
    return await get_department(department.id)


async def update_department(
    actor: Actor, department_id: int, wanted: DepartmentChanges
) -> DepartmentView:
    if "parent_id" in wanted:
        await department_exists(wanted["parent_id"], "parent_id")
    if "manager_id" in wanted:
        await _manager_ok(wanted["manager_id"])
    try:
        async with in_transaction():
            if "parent_id" in wanted:  # two moves at once could each miss the other's cycle
                await lock_department_tree()
            row = await locked_row(Department, "department", department_id, *DEPARTMENT_COLUMNS)
            changes = field_changes(row, dict(wanted))
            new_parent = wanted.get("parent_id")
            moved_below = "parent_id" in changes and new_parent is not None
            if moved_below and new_parent in await department_subtree(department_id):
                raise DepartmentCycle()
            if changes:
                values = {name: value for name, value in wanted.items() if name in changes}
                await Department.filter(id=department_id).update(**values)
                await record_by(
                    actor, "department.update", "department", department_id, changes=changes
                )
    except IntegrityError as exc:
        raise _department_conflict(exc) from None
    return await get_department(department_id)


async def delete_department(actor: Actor, department_id: int) -> None:
    async with in_transaction():
        row = await locked_row(Department, "department", department_id, "name")
        children = await Department.filter(parent_id=department_id).count()
        users = await User.filter(department_id=department_id).count()
        positions = await Position.filter(department_id=department_id).count()
        if children or users or positions:
            raise DepartmentNotEmpty(children=children, users=users, positions=positions)
        await Department.filter(id=department_id).delete()
        await record_by(actor, "department.delete", "department", department_id, name=row["name"])


# --- positions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionView:
    id: int
    name: str
    department: Ref | None
    headcount: int
    user_count: int
    created_at: dt.datetime


class PositionChanges(TypedDict, total=False):
    name: str
    department_id: int | None
    headcount: int


POSITION_COLUMNS: Final = ("id", "name", "department_id", "headcount", "created_at")


async def _position_views(rows: Sequence[dict[str, Any]]) -> list[PositionView]:
    ids = [int(row["id"]) for row in rows]
    departments = await refs(Department, (row["department_id"] for row in rows))
    counts = await _users_per("position_id", ids)
    return [
        PositionView(
            id=int(row["id"]),
            name=str(row["name"]),
            department=departments.get(row["department_id"] or 0),
            headcount=int(row["headcount"]),
            user_count=counts.get(int(row["id"]), 0),
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def list_positions(
    paging: Paging, q: str | None = None, department_id: int | None = None
) -> Page[PositionView]:
    query = Position.all()
    if q:
        query = query.filter(name__icontains=q)
    if department_id is not None:
        query = query.filter(department_id=department_id)
    rows, total = await paged_values(query, paging, POSITION_COLUMNS, "id")
    return Page(await _position_views(rows), total, paging.page, paging.size)


async def get_position(position_id: int) -> PositionView:
    rows = await Position.filter(id=position_id).values(*POSITION_COLUMNS)
    if not rows:
        raise NotFound(f"no position has the id {position_id}")
    return (await _position_views(rows))[0]


def _position_conflict(exc: IntegrityError) -> DeerError:
    if violation(exc)[0] == FOREIGN_KEY_VIOLATION:
        return invalid("department_id", "this department was just deleted")
    raise exc


async def create_position(
    actor: Actor, name: str, department_id: int | None, headcount: int
) -> PositionView:
    await department_exists(department_id, "department_id")
    try:
        async with in_transaction():
            position = await Position.create(
                name=name, department_id=department_id, headcount=headcount
            )
            await record_by(actor, "position.create", "position", position.id, name=name)
    except IntegrityError as exc:
        raise _position_conflict(exc) from None
    return await get_position(position.id)


async def update_position(actor: Actor, position_id: int, wanted: PositionChanges) -> PositionView:
    if "department_id" in wanted:
        await department_exists(wanted["department_id"], "department_id")
    try:
        async with in_transaction():
            row = await locked_row(Position, "position", position_id, *POSITION_COLUMNS)
            changes = field_changes(row, dict(wanted))
            if changes:
                values = {name: value for name, value in wanted.items() if name in changes}
                await Position.filter(id=position_id).update(**values)
                await record_by(actor, "position.update", "position", position_id, changes=changes)
    except IntegrityError as exc:
        raise _position_conflict(exc) from None
    return await get_position(position_id)


async def delete_position(actor: Actor, position_id: int) -> None:
    async with in_transaction():
        row = await locked_row(Position, "position", position_id, "name")
        users = await User.filter(position_id=position_id).count()
        if users:
            raise PositionInUse(users=users)
        await Position.filter(id=position_id).delete()
        await record_by(actor, "position.delete", "position", position_id, name=row["name"])


# --- roles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleView:
    role: Role
    user_count: int


async def _role_views(roles: Sequence[Role]) -> list[RoleView]:
    ids = [role.id for role in roles]
    counts: dict[int, int] = {}
    if ids:
        counted = (
            await Role.filter(id__in=ids, users__id__isnull=False)
            .annotate(n=Count("users__id"))
            .group_by("id")
            .values_list("id", "n")
        )
        counts = {int(role_id): int(n) for role_id, n in counted}
    return [RoleView(role, counts.get(role.id, 0)) for role in roles]


async def list_roles(paging: Paging) -> Page[RoleView]:
    roles, total = await paged(Role.all(), paging, "id")
    return Page(await _role_views(roles), total, paging.page, paging.size)


async def get_role(role_id: int) -> RoleView:
    role = await Role.get_or_none(id=role_id)
    if role is None:
        raise NotFound(f"no role has the id {role_id}")
    return (await _role_views([role]))[0]


async def create_role(actor: Actor, code: str, name: str) -> RoleView:
    if code in RESERVED_ROLE_CODES:
        raise invalid("code", f"{code!r} is reserved by the policies")
    try:
        async with in_transaction():
            role = await Role.create(code=code, name=name, builtin=False)
            await record_by(actor, "role.create", "role", role.id, code=code, name=name)
    except IntegrityError:
        raise RoleExists() from None
    return await get_role(role.id)


async def rename_role(actor: Actor, role_id: int, name: str) -> RoleView:
    async with in_transaction():
        role = await Role.filter(id=role_id).select_for_update().first()
        if role is None:
            raise NotFound(f"no role has the id {role_id}")
        if role.name != name:
            await Role.filter(id=role_id).update(name=name)
            await record_by(
                actor, "role.update", "role", role_id, changes={"name": [role.name, name]}
            )
    return await get_role(role_id)


async def delete_role(actor: Actor, policies: Policies, role_id: int) -> None:
    """Delete an unused role and the policy rules naming it, so that a later role with the
    same code does not inherit forgotten rights."""
    async with in_transaction():
        await lock_policies()
        role = await Role.filter(id=role_id).select_for_update().first()
        if role is None:
            raise NotFound(f"no role has the id {role_id}")
        if role.builtin:
            raise BuiltinRole()
        users = await User.filter(roles__id=role_id).count()
        if users:
            raise RoleInUse(users=users)
        dropped = await drop_rules_naming(role.code)
        await role.delete()
        await record_by(
            actor, "role.delete", "role", role_id, code=role.code, policies_removed=dropped
        )
    if dropped:
        await policies.changed()
