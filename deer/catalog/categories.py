"""Categories: a tree (one name per parent), a sort order within each level, an enabled flag.

Members see the enabled part of the tree (a disabled category hides its subcategories too);
staff see all of it. A category is deleted for real, and only while nothing refers to it.
Every staff write is in the audit log, in the same transaction.

Locks, in this order: the category tree advisory lock (moving a category), then the row being
changed (`FOR UPDATE`, which also waits for rows being inserted with a key to it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from tortoise.connection import get_connection
from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from deer.accounts.admin_common import (
    FOREIGN_KEY_VIOLATION,
    UNIQUE_VIOLATION,
    field_changes,
    invalid,
    locked_row,
    violation,
)
from deer.accounts.audit import Actor, record_by
from deer.catalog.errors import CategoryCycle, CategoryNameTaken, CategoryNotEmpty
from deer.catalog.models import Category, Product, ProductStatus
from deer.errors import DeerError, NotFound

CATEGORY_TREE_LOCK: Final = 0x6361_7467  # "catg": one category move at a time
PATH_SEPARATOR: Final = "/"
MAX_DEPTH: Final = 32  # guards the recursive queries; the tree never gets near it
COLUMNS: Final = ("id", "name", "parent_id", "sort", "enabled", "created_at")

SUBTREE_SQL: Final = f"""
WITH RECURSIVE subtree AS (
    SELECT id, 0 AS depth FROM category WHERE id = $1
    UNION
    SELECT c.id, s.depth + 1 FROM category c JOIN subtree s ON c.parent_id = s.id
    WHERE s.depth < {MAX_DEPTH}
)
SELECT id FROM subtree
"""

# Each wanted category with its ancestors, the root last: (leaf, id, name, depth).
PATHS_SQL: Final = f"""
WITH RECURSIVE up AS (
    SELECT id AS leaf, id, parent_id, name, 0 AS depth FROM category WHERE id = ANY($1::bigint[])
    UNION ALL
    SELECT up.leaf, c.id, c.parent_id, c.name, up.depth + 1
    FROM category c JOIN up ON c.id = up.parent_id
    WHERE up.depth < {MAX_DEPTH}
)
SELECT leaf, id, name, depth FROM up ORDER BY leaf, depth DESC
"""


@dataclass(frozen=True)
class CategoryPath:
    """A category as products name it: its id and name, and the names from the root down."""

    id: int
    name: str
    ids: tuple[int, ...]  # root first, this category last
    names: tuple[str, ...]

    @property
    def path(self) -> str:
        return PATH_SEPARATOR.join(self.names)


@dataclass(frozen=True)
class CategoryView:
    id: int
    name: str
    parent_id: int | None
    sort: int
    enabled: bool
    product_count: int  # products not deleted, in this category itself
    created_at: dt.datetime


@dataclass(frozen=True)
class CategoryNode:
    category: CategoryView
    children: list[CategoryNode] = field(default_factory=list)


class CategoryChanges(TypedDict, total=False):
    name: str
    parent_id: int | None
    sort: int
    enabled: bool


async def category_subtree(root_id: int) -> list[int]:
    """The category and every category below it (empty when it does not exist)."""
    rows = await get_connection("default").execute_query_dict(SUBTREE_SQL, [root_id])
    return [int(row["id"]) for row in rows]


async def category_paths(ids: Collection[int]) -> dict[int, CategoryPath]:
    """The paths of these categories by id, in one query; a missing id is left out."""
    if not ids:
        return {}
    rows = await get_connection("default").execute_query_dict(PATHS_SQL, [list(set(ids))])
    chains: dict[int, list[tuple[int, str]]] = {}
    for row in rows:
        chains.setdefault(int(row["leaf"]), []).append((int(row["id"]), str(row["name"])))
    return {
        leaf: CategoryPath(
            id=leaf,
            name=chain[-1][1],
            ids=tuple(i for i, _ in chain),
            names=tuple(name for _, name in chain),
        )
        for leaf, chain in chains.items()
    }


async def ids_by_path() -> dict[str, int]:
    """Every category by its path (`数码/手机`): names are unique per parent, so paths are."""
    rows = await Category.all().values_list("id", "parent_id", "name")
    parents = {int(i): (parent, str(name)) for i, parent, name in rows}

    def path_of(category_id: int) -> str:
        names: list[str] = []
        current: int | None = category_id
        while current is not None and len(names) <= MAX_DEPTH:
            parent, name = parents[current]
            names.append(name)
            current = parent
        return PATH_SEPARATOR.join(reversed(names))

    return {path_of(i): i for i in parents}


async def _product_counts(ids: Sequence[int]) -> dict[int, int]:
    if not ids:
        return {}
    counted = (
        await Product.filter(category_id__in=ids)
        .exclude(status=ProductStatus.DELETED)
        .annotate(n=Count("id"))
        .group_by("category_id")
        .values_list("category_id", "n")
    )
    return {int(i): int(n) for i, n in counted}


async def _views(rows: Sequence[dict[str, Any]]) -> list[CategoryView]:
    counts = await _product_counts([int(row["id"]) for row in rows])
    return [
        CategoryView(
            id=int(row["id"]),
            name=str(row["name"]),
            parent_id=row["parent_id"],
            sort=int(row["sort"]),
            enabled=bool(row["enabled"]),
            product_count=counts.get(int(row["id"]), 0),
            created_at=row["created_at"],
        )
        for row in rows
    ]


def _enabled_part(nodes: list[CategoryNode]) -> list[CategoryNode]:
    return [
        CategoryNode(node.category, _enabled_part(node.children))
        for node in nodes
        if node.category.enabled
    ]


async def category_tree(*, enabled_only: bool) -> list[CategoryNode]:
    """Every category nested under its parent, each level in `sort` order; with
    `enabled_only`, a disabled category and everything below it are left out."""
    rows = await Category.all().order_by("sort", "id").values(*COLUMNS)
    nodes = {view.id: CategoryNode(view) for view in await _views(rows)}
    roots: list[CategoryNode] = []
    for node in nodes.values():
        parent = nodes.get(node.category.parent_id or 0)
        (parent.children if parent is not None else roots).append(node)
    return _enabled_part(roots) if enabled_only else roots


async def get_category(category_id: int) -> CategoryView:
    rows = await Category.filter(id=category_id).values(*COLUMNS)
    if not rows:
        raise NotFound(f"no category has the id {category_id}")
    return (await _views(rows))[0]


async def _parent_exists(parent_id: int | None) -> None:
    if parent_id is not None and not await Category.exists(id=parent_id):
        raise invalid("parent_id", f"no category has the id {parent_id}")


def _conflict(exc: IntegrityError) -> DeerError:
    state, _ = violation(exc)
    if state == UNIQUE_VIOLATION:
        return CategoryNameTaken()
    if state == FOREIGN_KEY_VIOLATION:
        return invalid("parent_id", "this category was just deleted")
    raise exc


async def create_category(
    actor: Actor, name: str, parent_id: int | None, sort: int, enabled: bool
) -> CategoryView:
    await _parent_exists(parent_id)
    try:
        async with in_transaction():
            category = await Category.create(
                name=name, parent_id=parent_id, sort=sort, enabled=enabled
            )
            await record_by(
                actor,
                "category.create",
                "category",
                category.id,
                name=name,
                parent_id=parent_id,
                sort=sort,
                enabled=enabled,
            )
    except IntegrityError as exc:
        raise _conflict(exc) from None
    return await get_category(category.id)


async def update_category(actor: Actor, category_id: int, wanted: CategoryChanges) -> CategoryView:
    if "parent_id" in wanted:
        await _parent_exists(wanted["parent_id"])
    try:
        async with in_transaction():
            if "parent_id" in wanted:  # two moves at once could each miss the other's cycle
                await get_connection("default").execute_query(
                    "SELECT pg_advisory_xact_lock($1)", [CATEGORY_TREE_LOCK]
                )
            row = await locked_row(Category, "category", category_id, *COLUMNS)
            changes = field_changes(row, dict(wanted))
            new_parent = wanted.get("parent_id")
            moved_below = "parent_id" in changes and new_parent is not None
            if moved_below and new_parent in await category_subtree(category_id):
                raise CategoryCycle(parent_id=new_parent)
            if changes:
                values = {name: value for name, value in wanted.items() if name in changes}
                await Category.filter(id=category_id).update(**values)
                await record_by(actor, "category.update", "category", category_id, changes=changes)
    except IntegrityError as exc:
        raise _conflict(exc) from None
    return await get_category(category_id)


async def delete_category(actor: Actor, category_id: int) -> None:
    """Delete an empty category: no subcategory and no product, not even a deleted one (its
    row still names the category; such a category can be disabled instead)."""
    async with in_transaction():
        row = await locked_row(Category, "category", category_id, "name", "parent_id")
        children = await Category.filter(parent_id=category_id).count()
        products = await Product.filter(category_id=category_id).count()
        if children or products:
            deleted = await Product.filter(
                category_id=category_id, status=ProductStatus.DELETED
            ).count()
            raise CategoryNotEmpty(
                children=children, products=products - deleted, deleted_products=deleted
            )
        await Category.filter(id=category_id).delete()
        await record_by(
            actor,
            "category.delete",
            "category",
            category_id,
            name=row["name"],
            parent_id=row["parent_id"],
        )
