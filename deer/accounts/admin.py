"""Administration: staff users, departments, positions, roles, members, the audit log and
the casbin policy rules.

Service code: callers say who acts and from where (`Actor`) and pass the session and policy
holders when a change must reach tokens or the enforcers. Nothing here knows HTTP.

Every write runs in one transaction with its audit record, so a refused write changes
nothing and an accepted one is always recorded. Locks are taken in this order, never another:
1. the policy advisory lock (policy writes, role deletion: the lock start-up syncs under);
2. the department tree advisory lock (moving a department);
3. the `admin` role row (anything that may lower the number of active admins);
4. the row being changed (`FOR UPDATE`), which also waits for rows being inserted with a
   foreign key to it (`FOR KEY SHARE`): "is it empty?" stays true until the delete.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Literal, TypedDict, TypeVar

from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from deer.access.models import PolicyRule
from deer.access.policy import AUTHENTICATED, SYNC_LOCK, Policies, Rule, build_enforcer
from deer.access.scope import department_subtree, scoped
from deer.accounts import audit
from deer.accounts.audit import Origin
from deer.accounts.errors import (
    AdminRoleReserved,
    BuiltinRole,
    CannotDemoteSelf,
    CannotDisableSelf,
    DepartmentCycle,
    DepartmentNameTaken,
    DepartmentNotEmpty,
    LastAdmin,
    MobileTaken,
    PolicyExists,
    PolicyLockout,
    PositionInUse,
    RoleExists,
    RoleInUse,
    UnknownRole,
    UsernameTaken,
)
from deer.accounts.models import (
    AuditLog,
    Department,
    Member,
    MemberCondition,
    Position,
    Role,
    User,
    UserStatus,
)
from deer.accounts.passwords import WeakPassword, hash_password
from deer.accounts.sessions import Sessions
from deer.accounts.tokens import Principal
from deer.errors import DeerError, Forbidden, NotFound, ValidationFailed

ADMIN: Final = "admin"
MEMBER_ROLE: Final = "member"  # shoppers' role: given by the sign-in, never to staff
# Casbin subjects that are not rows of `role`: every signed-in caller, and the staff group.
RESERVED_ROLE_CODES: Final = frozenset({AUTHENTICATED, "staff"})
DEPARTMENT_TREE_LOCK: Final = 0x6465_7074  # "dept": one department move at a time
# What admins must keep being allowed to do, or nobody can repair the policies any more
# (route patterns, as the auth middleware asks casbin).
POLICY_ADMIN_REQUESTS: Final = (
    ("/api/admin/policies", "GET"),
    ("/api/admin/policies", "POST"),
    ("/api/admin/policies/:id", "DELETE"),
)
UNIQUE_VIOLATION: Final = "23505"
FOREIGN_KEY_VIOLATION: Final = "23503"

T = TypeVar("T")
M = TypeVar("M", bound=Model)


# --- shared pieces -----------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who asks for a change, and from where: every write is recorded with it."""

    principal: Principal
    origin: Origin


@dataclass(frozen=True)
class Paging:
    page: int = 1
    size: int = 20

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    page: int
    size: int


@dataclass(frozen=True)
class Ref:
    """Another row named in a view: its id and what people call it."""

    id: int
    name: str


async def _paged(query: QuerySet[M], paging: Paging, *order: str) -> tuple[list[M], int]:
    total = await query.count()
    items = await query.order_by(*order).offset(paging.offset).limit(paging.size)
    return items, total


async def _record(
    actor: Actor, action: str, target_type: str, target_id: int | str, **details: Any
) -> None:
    principal = actor.principal
    model: type[User | Member] = User if principal.kind == "staff" else Member
    names = await model.filter(id=principal.id).values_list("name", flat=True)
    await audit.record(
        action,
        "ok",
        actor.origin,
        actor_kind=principal.kind,
        actor_id=principal.id,
        actor_name=str(names[0]) if names else "",
        target_type=target_type,
        target_id=target_id,
        **details,
    )


def _invalid(path: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {reason}", fields=[{"path": path, "reason": reason}])


def _violation(exc: IntegrityError) -> tuple[str, str]:
    """The SQLSTATE and constraint name of the database error behind `exc`."""
    cause = exc.__cause__
    return str(getattr(cause, "sqlstate", "") or ""), str(getattr(cause, "constraint_name", ""))


def _changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for the fields whose value really changes (for the audit log)."""
    return {
        name: [_plain(current[name]), _plain(value)]
        for name, value in wanted.items()
        if current[name] != value
    }


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, MemberCondition | UserStatus) else value


async def _refs(model: type[Model], ids: Iterable[int | None]) -> dict[int, Ref]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await model.filter(id__in=wanted).values_list("id", "name")
    return {int(i): Ref(int(i), str(name)) for i, name in rows}


async def _locked_row(model: type[Model], noun: str, row_id: int, *columns: str) -> dict[str, Any]:
    """Lock one row `FOR UPDATE` and read these columns of it; 404 when it does not exist.

    The lock is taken through a model query: tortoise leaves `FOR UPDATE` out of `values()`,
    `values_list()`, `exists()` and `count()` queries.
    """
    if not await model.filter(id=row_id).select_for_update().only("id"):
        raise NotFound(f"no {noun} has the id {row_id}")
    rows = await model.filter(id=row_id).values(*columns)
    return rows[0]


async def _advisory_lock(lock: int) -> None:
    """A transaction-scoped PostgreSQL lock on a number: for rules no single row holds."""
    await get_connection("default").execute_query("SELECT pg_advisory_xact_lock($1)", [lock])


async def _department_exists(department_id: int | None, path: str) -> None:
    if department_id is not None and not await Department.exists(id=department_id):
        raise _invalid(path, f"no department has the id {department_id}")


async def _position_exists(position_id: int | None, path: str) -> None:
    if position_id is not None and not await Position.exists(id=position_id):
        raise _invalid(path, f"no position has the id {position_id}")


# --- staff users -------------------------------------------------------------------------


@dataclass(frozen=True)
class UserView:
    user: User
    roles: tuple[str, ...]
    department: Ref | None
    position: Ref | None


@dataclass(frozen=True)
class NewUser:
    username: str
    name: str
    password: str
    mobile: str | None = None
    email: str | None = None
    department_id: int | None = None
    position_id: int | None = None
    roles: tuple[str, ...] = ()


class UserChanges(TypedDict, total=False):
    name: str
    mobile: str | None
    email: str | None
    department_id: int | None
    position_id: int | None


@dataclass(frozen=True)
class UserFilter:
    q: str | None = None
    department_id: int | None = None
    include_subdepartments: bool = False
    role: str | None = None
    status: UserStatus | None = None


async def _user_views(users: Sequence[User]) -> list[UserView]:
    ids = [user.id for user in users]
    roles: dict[int, list[str]] = defaultdict(list)
    if ids:
        for user_id, code in await Role.filter(users__id__in=ids).values_list("users__id", "code"):
            roles[int(user_id)].append(str(code))
    departments = await _refs(Department, (user.department_id for user in users))
    positions = await _refs(Position, (user.position_id for user in users))
    return [
        UserView(
            user=user,
            roles=tuple(sorted(roles[user.id])),
            department=departments.get(user.department_id or 0),
            position=positions.get(user.position_id or 0),
        )
        for user in users
    ]


async def _user_view(user: User) -> UserView:
    return (await _user_views([user]))[0]


async def _visible_users(principal: Principal) -> QuerySet[User]:
    """The users `principal` may see: all for admins, a manager's department subtree."""
    return await scoped(User.all(), principal, owner="id", department="department_id")


async def _locked_user(principal: Principal, user_id: int) -> User:
    visible = await _visible_users(principal)
    user = await visible.filter(id=user_id).select_for_update().first()
    if user is None:
        raise NotFound(f"no user has the id {user_id}")
    return user


async def _fresh_view(user_id: int) -> UserView:
    """A user as stored now, after a write that was allowed (whatever the scope says now)."""
    return await _user_view(await User.get(id=user_id))


async def _check_placement(principal: Principal, department_id: int | None) -> None:
    """Only admins put users outside their own data scope: a manager places people in their
    department subtree (or in departments they manage), nobody else places anyone."""
    if principal.is_admin:
        return
    if department_id is not None:
        departments = await scoped(
            Department.filter(id=department_id), principal, owner="manager_id", department="id"
        )
        if await departments.exists():
            return
    raise Forbidden("you may only place users in the departments you manage")


async def _lock_admin_count() -> None:
    """Serialise every change that may lower the number of active admins."""
    await Role.filter(code=ADMIN).select_for_update().only("id")


async def _other_active_admins(user_id: int) -> int:
    return (
        await User.filter(status=UserStatus.ACTIVE, roles__code=ADMIN).exclude(id=user_id).count()
    )


async def _roles_by_code(codes: Sequence[str], path: str = "roles") -> list[Role]:
    found = {role.code: role for role in await Role.filter(code__in=list(codes))}
    unknown = [
        {"path": f"{path}.{index}", "reason": f"no role has the code {code!r}"}
        for index, code in enumerate(codes)
        if code not in found
    ]
    if unknown:
        raise UnknownRole(
            "unknown role codes: " + ", ".join(c for c in codes if c not in found), fields=unknown
        )
    if MEMBER_ROLE in found:
        index = list(codes).index(MEMBER_ROLE)
        raise _invalid(f"{path}.{index}", "the member role is for shoppers, not staff")
    return [found[code] for code in dict.fromkeys(codes)]


def _check_admin_grant(actor: Actor, before: set[str], after: set[str]) -> None:
    if ADMIN in before ^ after and not actor.principal.is_admin:
        raise AdminRoleReserved()


async def _hash(password: str) -> str:
    try:
        return await asyncio.to_thread(hash_password, password)
    except WeakPassword as exc:
        raise WeakPassword(
            exc.message, fields=[{"path": "password", "reason": exc.message}]
        ) from None


def _user_conflict(exc: IntegrityError) -> DeerError:
    state, constraint = _violation(exc)
    if state == UNIQUE_VIOLATION and "username" in constraint:
        return UsernameTaken()
    if state == UNIQUE_VIOLATION and "mobile" in constraint:
        return MobileTaken()
    if state == FOREIGN_KEY_VIOLATION and "position" in constraint:
        return _invalid("position_id", "this position was just deleted")
    if state == FOREIGN_KEY_VIOLATION and "role" in constraint:
        return UnknownRole("a role was just deleted")
    if state == FOREIGN_KEY_VIOLATION:
        return _invalid("department_id", "this department was just deleted")
    raise exc


async def list_users(principal: Principal, paging: Paging, where: UserFilter) -> Page[UserView]:
    query = await _visible_users(principal)
    if where.q:
        query = query.filter(
            Q(username__icontains=where.q)
            | Q(name__icontains=where.q)
            | Q(mobile__contains=where.q)
        )
    if where.department_id is not None:
        if where.include_subdepartments:
            query = query.filter(department_id__in=await department_subtree(where.department_id))
        else:
            query = query.filter(department_id=where.department_id)
    if where.role is not None:
        query = query.filter(roles__code=where.role)
    if where.status is not None:
        query = query.filter(status=where.status)
    users, total = await _paged(query, paging, "id")
    return Page(await _user_views(users), total, paging.page, paging.size)


async def get_user(principal: Principal, user_id: int) -> UserView:
    visible = await _visible_users(principal)
    user = await visible.filter(id=user_id).first()
    if user is None:
        raise NotFound(f"no user has the id {user_id}")
    return await _user_view(user)


async def create_user(actor: Actor, new: NewUser) -> UserView:
    roles = await _roles_by_code(new.roles)
    _check_admin_grant(actor, set(), set(new.roles))
    await _department_exists(new.department_id, "department_id")
    await _position_exists(new.position_id, "position_id")
    await _check_placement(actor.principal, new.department_id)
    password_hash = await _hash(new.password)
    try:
        async with in_transaction():
            user = await User.create(
                username=new.username,
                name=new.name,
                mobile=new.mobile,
                email=new.email,
                password_hash=password_hash,
                department_id=new.department_id,
                position_id=new.position_id,
            )
            if roles:
                await user.roles.add(*roles)
            await _record(
                actor, "user.create", "user", user.id, username=user.username, roles=new.roles
            )
    except IntegrityError as exc:
        raise _user_conflict(exc) from None
    return await _user_view(user)


async def update_user(
    actor: Actor, sessions: Sessions, user_id: int, wanted: UserChanges
) -> UserView:
    """Change profile fields; moving someone to another department ends their sessions,
    since their data scope follows the department."""
    if "department_id" in wanted:
        await _department_exists(wanted["department_id"], "department_id")
        await _check_placement(actor.principal, wanted["department_id"])
    if "position_id" in wanted:
        await _position_exists(wanted["position_id"], "position_id")
    try:
        async with in_transaction():
            user = await _locked_user(actor.principal, user_id)
            current = {name: getattr(user, name) for name in wanted}
            changes = _changes(current, dict(wanted))
            if changes:
                values = {name: value for name, value in wanted.items() if name in changes}
                await User.filter(id=user.id).update(**values, updated_at=dt.datetime.now(dt.UTC))
                await _record(actor, "user.update", "user", user.id, changes=changes)
    except IntegrityError as exc:
        raise _user_conflict(exc) from None
    if "department_id" in changes:
        await sessions.end_all_sessions("staff", user_id)
    return await _fresh_view(user_id)


async def replace_roles(
    actor: Actor, sessions: Sessions, user_id: int, codes: Sequence[str]
) -> UserView:
    """Give a user exactly these roles; their sessions end so the new roles apply at once."""
    roles = await _roles_by_code(codes)
    try:
        async with in_transaction():
            await _lock_admin_count()
            user = await _locked_user(actor.principal, user_id)
            held = {role.code: role for role in await user.roles.all()}
            before, after = set(held), {role.code for role in roles}
            _check_admin_grant(actor, before, after)
            if ADMIN in before - after:
                if _is_self(actor, user.id):
                    raise CannotDemoteSelf()
                if user.status == UserStatus.ACTIVE and not await _other_active_admins(user.id):
                    raise LastAdmin()
            if before != after:
                removed = [held[code] for code in sorted(before - after)]
                added = [role for role in roles if role.code not in before]
                if removed:
                    await user.roles.remove(*removed)
                if added:
                    await user.roles.add(*added)
                await _record(
                    actor,
                    "role.assign",
                    "user",
                    user.id,
                    before=sorted(before),
                    after=sorted(after),
                )
    except IntegrityError as exc:
        raise _user_conflict(exc) from None
    if before != after:
        await sessions.end_all_sessions("staff", user_id)
    return await _fresh_view(user_id)


def _is_self(actor: Actor, user_id: int) -> bool:
    return actor.principal.kind == "staff" and actor.principal.id == user_id


async def disable_user(actor: Actor, sessions: Sessions, user_id: int) -> UserView:
    """Disable an account: its sessions end at once, in every process; it cannot sign in."""
    async with in_transaction():
        await _lock_admin_count()
        user = await _locked_user(actor.principal, user_id)
        if _is_self(actor, user.id):
            raise CannotDisableSelf()
        changed = user.status != UserStatus.DISABLED
        if changed:
            is_admin = await user.roles.filter(code=ADMIN).exists()
            if is_admin and not await _other_active_admins(user.id):
                raise LastAdmin()
            await User.filter(id=user.id).update(
                status=UserStatus.DISABLED, updated_at=dt.datetime.now(dt.UTC)
            )
            await _record(actor, "user.disable", "user", user.id)
    if changed:
        await sessions.end_all_sessions("staff", user_id)
    return await _fresh_view(user_id)


async def enable_user(actor: Actor, user_id: int) -> UserView:
    async with in_transaction():
        user = await _locked_user(actor.principal, user_id)
        if user.status != UserStatus.ACTIVE:
            await User.filter(id=user.id).update(
                status=UserStatus.ACTIVE, updated_at=dt.datetime.now(dt.UTC)
            )
            await _record(actor, "user.enable", "user", user.id)
    return await _fresh_view(user_id)


async def reset_password(actor: Actor, sessions: Sessions, user_id: int, password: str) -> None:
    """Set a new password for someone who lost theirs; every session of theirs ends."""
    password_hash = await _hash(password)
    async with in_transaction():
        user = await _locked_user(actor.principal, user_id)
        await User.filter(id=user.id).update(
            password_hash=password_hash, updated_at=dt.datetime.now(dt.UTC)
        )
        await _record(actor, "user.password_reset", "user", user.id)
    await sessions.end_all_sessions("staff", user_id)


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


async def _department_views(rows: Sequence[dict[str, Any]]) -> list[DepartmentView]:
    ids = [int(row["id"]) for row in rows]
    managers = await _refs(User, (row["manager_id"] for row in rows))
    counts: dict[int, int] = {}
    if ids:
        counted = (
            await User.filter(department_id__in=ids)
            .annotate(n=Count("id"))
            .group_by("department_id")
            .values_list("department_id", "n")
        )
        counts = {int(department_id): int(n) for department_id, n in counted}
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
        raise _invalid("manager_id", f"no user has the id {manager_id}")
    if manager.status != UserStatus.ACTIVE:
        raise _invalid("manager_id", "a disabled user cannot manage a department")


def _department_conflict(exc: IntegrityError) -> DeerError:
    state, constraint = _violation(exc)
    if state == UNIQUE_VIOLATION:
        return DepartmentNameTaken()
    if state == FOREIGN_KEY_VIOLATION and "manager" in constraint:
        return _invalid("manager_id", "this user was just deleted")
    if state == FOREIGN_KEY_VIOLATION:
        return _invalid("parent_id", "this department was just deleted")
    raise exc


async def list_departments(
    paging: Paging, q: str | None = None, parent_id: int | None = None
) -> Page[DepartmentView]:
    query = Department.all()
    if q:
        query = query.filter(name__icontains=q)
    if parent_id is not None:
        query = query.filter(parent_id=parent_id)
    total = await query.count()
    rows = (
        await query.order_by("sort", "id")
        .offset(paging.offset)
        .limit(paging.size)
        .values(*DEPARTMENT_COLUMNS)
    )
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
    await _department_exists(parent_id, "parent_id")
    await _manager_ok(manager_id)
    try:
        async with in_transaction():
            department = await Department.create(
                name=name, parent_id=parent_id, manager_id=manager_id, sort=sort
            )
            await _record(
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
        await _department_exists(wanted["parent_id"], "parent_id")
    if "manager_id" in wanted:
        await _manager_ok(wanted["manager_id"])
    try:
        async with in_transaction():
            if "parent_id" in wanted:  # two moves at once could each miss the other's cycle
                await _advisory_lock(DEPARTMENT_TREE_LOCK)
            row = await _locked_row(Department, "department", department_id, *DEPARTMENT_COLUMNS)
            changes = _changes(row, dict(wanted))
            new_parent = wanted.get("parent_id")
            moved_below = "parent_id" in changes and new_parent is not None
            if moved_below and new_parent in await department_subtree(department_id):
                raise DepartmentCycle()
            if changes:
                values = {name: value for name, value in wanted.items() if name in changes}
                await Department.filter(id=department_id).update(**values)
                await _record(
                    actor, "department.update", "department", department_id, changes=changes
                )
    except IntegrityError as exc:
        raise _department_conflict(exc) from None
    return await get_department(department_id)


async def delete_department(actor: Actor, department_id: int) -> None:
    async with in_transaction():
        row = await _locked_row(Department, "department", department_id, "name")
        children = await Department.filter(parent_id=department_id).count()
        users = await User.filter(department_id=department_id).count()
        positions = await Position.filter(department_id=department_id).count()
        if children or users or positions:
            raise DepartmentNotEmpty(children=children, users=users, positions=positions)
        await Department.filter(id=department_id).delete()
        await _record(actor, "department.delete", "department", department_id, name=row["name"])


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
    departments = await _refs(Department, (row["department_id"] for row in rows))
    counts: dict[int, int] = {}
    if ids:
        counted = (
            await User.filter(position_id__in=ids)
            .annotate(n=Count("id"))
            .group_by("position_id")
            .values_list("position_id", "n")
        )
        counts = {int(position_id): int(n) for position_id, n in counted}
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
    total = await query.count()
    rows = (
        await query.order_by("id")
        .offset(paging.offset)
        .limit(paging.size)
        .values(*POSITION_COLUMNS)
    )
    return Page(await _position_views(rows), total, paging.page, paging.size)


async def get_position(position_id: int) -> PositionView:
    rows = await Position.filter(id=position_id).values(*POSITION_COLUMNS)
    if not rows:
        raise NotFound(f"no position has the id {position_id}")
    return (await _position_views(rows))[0]


def _position_conflict(exc: IntegrityError) -> DeerError:
    if _violation(exc)[0] == FOREIGN_KEY_VIOLATION:
        return _invalid("department_id", "this department was just deleted")
    raise exc


async def create_position(
    actor: Actor, name: str, department_id: int | None, headcount: int
) -> PositionView:
    await _department_exists(department_id, "department_id")
    try:
        async with in_transaction():
            position = await Position.create(
                name=name, department_id=department_id, headcount=headcount
            )
            await _record(actor, "position.create", "position", position.id, name=name)
    except IntegrityError as exc:
        raise _position_conflict(exc) from None
    return await get_position(position.id)


async def update_position(actor: Actor, position_id: int, wanted: PositionChanges) -> PositionView:
    if "department_id" in wanted:
        await _department_exists(wanted["department_id"], "department_id")
    try:
        async with in_transaction():
            row = await _locked_row(Position, "position", position_id, *POSITION_COLUMNS)
            changes = _changes(row, dict(wanted))
            if changes:
                values = {name: value for name, value in wanted.items() if name in changes}
                await Position.filter(id=position_id).update(**values)
                await _record(actor, "position.update", "position", position_id, changes=changes)
    except IntegrityError as exc:
        raise _position_conflict(exc) from None
    return await get_position(position_id)


async def delete_position(actor: Actor, position_id: int) -> None:
    async with in_transaction():
        row = await _locked_row(Position, "position", position_id, "name")
        users = await User.filter(position_id=position_id).count()
        if users:
            raise PositionInUse(users=users)
        await Position.filter(id=position_id).delete()
        await _record(actor, "position.delete", "position", position_id, name=row["name"])


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
    roles, total = await _paged(Role.all(), paging, "id")
    return Page(await _role_views(roles), total, paging.page, paging.size)


async def get_role(role_id: int) -> RoleView:
    role = await Role.get_or_none(id=role_id)
    if role is None:
        raise NotFound(f"no role has the id {role_id}")
    return (await _role_views([role]))[0]


async def create_role(actor: Actor, code: str, name: str) -> RoleView:
    if code in RESERVED_ROLE_CODES:
        raise _invalid("code", f"{code!r} is reserved by the policies")
    try:
        async with in_transaction():
            role = await Role.create(code=code, name=name, builtin=False)
            await _record(actor, "role.create", "role", role.id, code=code, name=name)
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
            await _record(
                actor, "role.update", "role", role_id, changes={"name": [role.name, name]}
            )
    return await get_role(role_id)


async def delete_role(actor: Actor, policies: Policies, role_id: int) -> None:
    """Delete an unused role and the policy rules naming it, so that a later role with the
    same code does not inherit forgotten rights."""
    async with in_transaction():
        await _lock_policies()
        role = await Role.filter(id=role_id).select_for_update().first()
        if role is None:
            raise NotFound(f"no role has the id {role_id}")
        if role.builtin:
            raise BuiltinRole()
        users = await User.filter(roles__id=role_id).count()
        if users:
            raise RoleInUse(users=users)
        naming = Q(v0=role.code) | Q(ptype="g", v1=role.code)
        rules = await PolicyRule.filter(naming, removed=False)
        if rules:
            remaining = await PolicyRule.filter(removed=False).exclude(
                id__in=[rule.id for rule in rules]
            )
            _keep_policy_admins(remaining)
            await _drop_rules(rules)
        await role.delete()
        await _record(
            actor, "role.delete", "role", role_id, code=role.code, policies_removed=len(rules)
        )
    if rules:
        await policies.changed()


# --- members -----------------------------------------------------------------------------


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
    members, total = await _paged(query, paging, "-id")
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
        changes = _changes(current, dict(wanted))
        if changes:
            values = {name: value for name, value in wanted.items() if name in changes}
            await Member.filter(id=member_id).update(**values, updated_at=dt.datetime.now(dt.UTC))
            await _record(actor, "member.update", "member", member_id, changes=changes)
    if "condition" in changes and wanted.get("condition") == MemberCondition.FROZEN:
        await sessions.end_all_sessions("member", member_id)
    return await get_member(member_id)


# --- audit log ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    actor_id: int | None = None
    actor_kind: str | None = None
    action: str | None = None
    result: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None


async def list_audit(paging: Paging, where: AuditFilter) -> Page[AuditLog]:
    """The audit log, newest first; `since` is inclusive, `until` exclusive."""
    query = AuditLog.all()
    exact = {
        "actor_id": where.actor_id,
        "actor_kind": where.actor_kind,
        "action": where.action,
        "result": where.result,
        "target_type": where.target_type,
        "target_id": where.target_id,
    }
    query = query.filter(**{name: value for name, value in exact.items() if value is not None})
    if where.since is not None:
        query = query.filter(created_at__gte=where.since)
    if where.until is not None:
        query = query.filter(created_at__lt=where.until)
    rows, total = await _paged(query, paging, "-created_at", "-id")
    return Page(rows, total, paging.page, paging.size)


# --- policies ----------------------------------------------------------------------------


Source = Literal["default", "admin"]


@dataclass(frozen=True)
class PolicyFilter:
    ptype: str | None = None
    v0: str | None = None
    source: Source | None = None
    removed: bool | None = None


def _rule_of(row: PolicyRule) -> Rule:
    return (row.ptype, row.v0, row.v1, row.v2)


def admins_manage_policies(rules: Iterable[Rule]) -> bool:
    """Whether these rules still let the admin role read, add and delete policy rules."""
    enforcer = build_enforcer(rules)
    return all(
        any(enforcer.enforce(subject, path, method) for subject in (ADMIN, AUTHENTICATED))
        for path, method in POLICY_ADMIN_REQUESTS
    )


def _keep_policy_admins(remaining: Iterable[PolicyRule]) -> None:
    if not admins_manage_policies(_rule_of(row) for row in remaining):
        raise PolicyLockout()


async def _drop_rules(rows: Iterable[PolicyRule]) -> None:
    """Delete rules admins added; keep shipped ones as removed, or start-up restores them."""
    rows = list(rows)
    shipped = [row.id for row in rows if row.source == "default"]
    added = [row.id for row in rows if row.source != "default"]
    if shipped:
        await PolicyRule.filter(id__in=shipped).update(removed=True)
    if added:
        await PolicyRule.filter(id__in=added).delete()


async def _lock_policies() -> None:
    """The lock start-up takes to sync the shipped rules: one policy writer at a time."""
    await _advisory_lock(SYNC_LOCK)


async def _known_subjects() -> set[str]:
    """Who a rule may name: roles, groups some `g` rule defines, every signed-in caller."""
    roles = await Role.all().values_list("code", flat=True)
    groups = await PolicyRule.filter(ptype="g", removed=False).values_list("v1", flat=True)
    return {str(code) for code in roles} | {str(group) for group in groups} | {AUTHENTICATED}


async def list_policies(paging: Paging, where: PolicyFilter) -> Page[PolicyRule]:
    query = PolicyRule.all()
    exact = {"ptype": where.ptype, "v0": where.v0, "source": where.source, "removed": where.removed}
    query = query.filter(**{name: value for name, value in exact.items() if value is not None})
    rows, total = await _paged(query, paging, "id")
    return Page(rows, total, paging.page, paging.size)


async def add_policy(actor: Actor, policies: Policies, rule: Rule) -> tuple[PolicyRule, bool]:
    """Add a rule (or bring back a removed shipped one); every process applies it at once.
    Returns the row and whether it was restored rather than created."""
    ptype, v0, v1, v2 = rule
    async with in_transaction():
        await _lock_policies()
        subjects = await _known_subjects()
        if v0 not in subjects:
            raise _invalid("v0", f"no role or group is called {v0!r}")
        if ptype == "g" and v0 == v1:
            raise _invalid("v1", "a role cannot inherit itself")
        row = await PolicyRule.get_or_none(ptype=ptype, v0=v0, v1=v1, v2=v2)
        if row is not None and not row.removed:
            raise PolicyExists(id=row.id)
        restored = row is not None
        if row is not None:
            row.removed = False
            await row.save(update_fields=["removed"])
        else:
            row = await PolicyRule.create(ptype=ptype, v0=v0, v1=v1, v2=v2, source="admin")
        await _record(
            actor,
            "policy.add",
            "policy",
            row.id,
            ptype=ptype,
            v0=v0,
            v1=v1,
            v2=v2,
            restored=restored,
        )
    await policies.changed()
    return row, restored


async def remove_policy(actor: Actor, policies: Policies, rule_id: int) -> None:
    """Remove a rule unless admins would lose the right to manage policies."""
    async with in_transaction():
        await _lock_policies()
        row = await PolicyRule.get_or_none(id=rule_id, removed=False)
        if row is None:
            raise NotFound(f"no active policy rule has the id {rule_id}")
        _keep_policy_admins(await PolicyRule.filter(removed=False).exclude(id=rule_id))
        await _drop_rules([row])
        await _record(
            actor,
            "policy.remove",
            "policy",
            row.id,
            ptype=row.ptype,
            v0=row.v0,
            v1=row.v1,
            v2=row.v2,
            source=row.source,
        )
    await policies.changed()
