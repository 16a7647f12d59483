"""Staff users: list (within the caller's data scope), create, change, roles, disable and
enable, password reset. Locks and shared pieces: `deer.accounts.admin_common`."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, TypedDict

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from deer.access.scope import department_subtree, scoped
from deer.accounts.admin_common import (
    ADMIN,
    FOREIGN_KEY_VIOLATION,
    UNIQUE_VIOLATION,
    Page,
    Paging,
    Ref,
    department_exists,
    field_changes,
    invalid,
    lock_admin_count,
    paged,
    position_exists,
    refs,
    violation,
)
from deer.accounts.audit import Actor, record_by
from deer.accounts.errors import (
    AdminRoleReserved,
    CannotDemoteSelf,
    CannotDisableSelf,
    LastAdmin,
    MobileTaken,
    UnknownRole,
    UsernameTaken,
)
from deer.accounts.models import Department, Position, Role, User, UserStatus
from deer.accounts.passwords import WeakPassword, hash_password
from deer.accounts.sessions import Sessions
from deer.accounts.tokens import Principal
from deer.errors import DeerError, Forbidden, NotFound

MEMBER_ROLE: Final = "member"  # shoppers' role: given by the sign-in, never to staff


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
    departments = await refs(Department, (user.department_id for user in users))
    positions = await refs(Position, (user.position_id for user in users))
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
        raise invalid(f"{path}.{index}", "the member role is for shoppers, not staff")
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
    state, constraint = violation(exc)
    if state == UNIQUE_VIOLATION and "username" in constraint:
        return UsernameTaken()
    if state == UNIQUE_VIOLATION and "mobile" in constraint:
        return MobileTaken()
    if state == FOREIGN_KEY_VIOLATION and "position" in constraint:
        return invalid("position_id", "this position was just deleted")
    if state == FOREIGN_KEY_VIOLATION and "role" in constraint:
        return UnknownRole("a role was just deleted")
    if state == FOREIGN_KEY_VIOLATION:
        return invalid("department_id", "this department was just deleted")
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
    users, total = await paged(query, paging, "id")
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
    await department_exists(new.department_id, "department_id")
    await position_exists(new.position_id, "position_id")
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
            await record_by(
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
        await department_exists(wanted["department_id"], "department_id")
        await _check_placement(actor.principal, wanted["department_id"])
    if "position_id" in wanted:
        await position_exists(wanted["position_id"], "position_id")
    try:
        async with in_transaction():
            user = await _locked_user(actor.principal, user_id)
            current = {name: getattr(user, name) for name in wanted}
            changes = field_changes(current, dict(wanted))
            if changes:
                values = {name: value for name, value in wanted.items() if name in changes}
                await User.filter(id=user.id).update(**values, updated_at=dt.datetime.now(dt.UTC))
                await record_by(actor, "user.update", "user", user.id, changes=changes)
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
            await lock_admin_count()
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
                await record_by(
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
        await lock_admin_count()
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
            await record_by(actor, "user.disable", "user", user.id)
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
            await record_by(actor, "user.enable", "user", user.id)
    return await _fresh_view(user_id)


async def reset_password(actor: Actor, sessions: Sessions, user_id: int, password: str) -> None:
    """Set a new password for someone who lost theirs; every session of theirs ends."""
    password_hash = await _hash(password)
    async with in_transaction():
        user = await _locked_user(actor.principal, user_id)
        await User.filter(id=user.id).update(
            password_hash=password_hash, updated_at=dt.datetime.now(dt.UTC)
        )
        await record_by(actor, "user.password_reset", "user", user.id)
    await sessions.end_all_sessions("staff", user_id)
