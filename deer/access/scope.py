"""Data scope: a salesperson sees their own rows, a manager their department subtree, an
admin everything. Applied inside the query, never after it."""

from __future__ import annotations

from typing import Any, TypeVar

from tortoise.connection import get_connection
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from deer.accounts.tokens import Principal

M = TypeVar("M", bound=Model)

SUBTREE_SQL = """
WITH RECURSIVE subtree AS (
    SELECT id FROM department WHERE id = $1
    UNION
    SELECT d.id FROM department d JOIN subtree s ON d.parent_id = s.id
)
SELECT id FROM subtree
"""


async def department_subtree(root_id: int) -> list[int]:
    rows: list[dict[str, Any]] = await get_connection("default").execute_query_dict(
        SUBTREE_SQL, [root_id]
    )
    return [int(row["id"]) for row in rows]


async def scoped(
    query: QuerySet[M],
    principal: Principal,
    *,
    owner: str = "owner_id",
    department: str = "department_id",
) -> QuerySet[M]:
    """Narrow `query` to what `principal` may see (staff only; members never reach here)."""
    if principal.is_admin:
        return query
    if "sales_manager" in principal.roles and principal.department_id is not None:
        departments = await department_subtree(principal.department_id)
        in_subtree: dict[str, Any] = {f"{department}__in": departments}
        own: dict[str, Any] = {owner: principal.id}
        return query.filter(Q(**in_subtree) | Q(**own))
    return query.filter(**{owner: principal.id})
