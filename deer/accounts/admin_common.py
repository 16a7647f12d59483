"""What the administration services share: paging, references to other rows, the checks and
conversions of every write, and the locks.

Service code: callers say who acts and from where (`deer.accounts.audit.Actor`) and pass the
session and policy holders when a change must reach tokens or the enforcers. Nothing here or
in the services knows HTTP.

Every write runs in one transaction with its audit record, so a refused write changes
nothing and an accepted one is always recorded. Locks are taken in this order, never another:
1. the policy advisory lock (policy writes, role deletion: the lock start-up syncs under);
2. the department tree advisory lock (moving a department);
3. the `admin` role row (anything that may lower the number of active admins);
4. the row being changed (`FOR UPDATE`), which also waits for rows being inserted with a
   foreign key to it (`FOR KEY SHARE`): "is it empty?" stays true until the delete.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError
from tortoise.models import Model
from tortoise.queryset import QuerySet

from deer.access.policy import SYNC_LOCK
from deer.accounts.models import Department, MemberCondition, Position, Role, UserStatus
from deer.errors import NotFound, ValidationFailed

ADMIN: Final = "admin"
DEPARTMENT_TREE_LOCK: Final = 0x6465_7074  # "dept": one department move at a time
UNIQUE_VIOLATION: Final = "23505"
FOREIGN_KEY_VIOLATION: Final = "23503"

T = TypeVar("T")
M = TypeVar("M", bound=Model)


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


async def paged(query: QuerySet[M], paging: Paging, *order: str) -> tuple[list[M], int]:
    total = await query.count()
    items = await query.order_by(*order).offset(paging.offset).limit(paging.size)
    return items, total


async def paged_values(
    query: QuerySet[M], paging: Paging, columns: Sequence[str], *order: str
) -> tuple[list[dict[str, Any]], int]:
    """`paged`, reading only these columns of each row."""
    total = await query.count()
    rows = await query.order_by(*order).offset(paging.offset).limit(paging.size).values(*columns)
    return rows, total


def invalid(path: str, reason: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {reason}", fields=[{"path": path, "reason": reason}])


def violation(exc: IntegrityError) -> tuple[str, str]:
    """The SQLSTATE and constraint name of the database error behind `exc`."""
    cause = exc.__cause__
    return str(getattr(cause, "sqlstate", "") or ""), str(getattr(cause, "constraint_name", ""))


def field_changes(current: dict[str, Any], wanted: dict[str, Any]) -> dict[str, list[Any]]:
    """`{field: [old, new]}` for the fields whose value really changes (for the audit log)."""
    return {
        name: [_plain(current[name]), _plain(value)]
        for name, value in wanted.items()
        if current[name] != value
    }


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, MemberCondition | UserStatus) else value


async def refs(model: type[Model], ids: Iterable[int | None]) -> dict[int, Ref]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await model.filter(id__in=wanted).values_list("id", "name")
    return {int(i): Ref(int(i), str(name)) for i, name in rows}


async def department_exists(department_id: int | None, path: str) -> None:
    if department_id is not None and not await Department.exists(id=department_id):
        raise invalid(path, f"no department has the id {department_id}")


async def position_exists(position_id: int | None, path: str) -> None:
    if position_id is not None and not await Position.exists(id=position_id):
        raise invalid(path, f"no position has the id {position_id}")


# --- locks, in the order above -------------------------------------------------------------


async def _advisory_lock(lock: int) -> None:
    """A transaction-scoped PostgreSQL lock on a number: for rules no single row holds."""
    await get_connection("default").execute_query("SELECT pg_advisory_xact_lock($1)", [lock])


async def lock_policies() -> None:
    """The lock start-up takes to sync the shipped rules: one policy writer at a time."""
    await _advisory_lock(SYNC_LOCK)


async def lock_department_tree() -> None:
    """One department move at a time: two moves at once could each miss the other's cycle."""
    await _advisory_lock(DEPARTMENT_TREE_LOCK)


async def lock_admin_count() -> None:
    """Serialise every change that may lower the number of active admins."""
    await Role.filter(code=ADMIN).select_for_update().only("id")


async def locked_row(model: type[Model], noun: str, row_id: int, *columns: str) -> dict[str, Any]:
    """Lock one row `FOR UPDATE` and read these columns of it; 404 when it does not exist.

    The lock is taken through a model query: tortoise leaves `FOR UPDATE` out of `values()`,
    `values_list()`, `exists()` and `count()` queries.
    """
    if not await model.filter(id=row_id).select_for_update().only("id"):
        raise NotFound(f"no {noun} has the id {row_id}")
    rows = await model.filter(id=row_id).values(*columns)
    return rows[0]
