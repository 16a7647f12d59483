"""Stock adjustments by staff and the stock ledger.

An adjustment is one conditional `UPDATE ... RETURNING`: it changes the stock only if the
product is not deleted and the stock stays at zero or above, so any number of adjustments
at once never lose one another's change nor go below zero (no read-modify-write). In the
same transaction, while the row stays locked, the movement, the audit record and the
`product.stock_changed` event are written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from tortoise.transactions import in_transaction

from deer.accounts.admin_common import Page, Paging, Ref, paged, refs
from deer.accounts.audit import Actor, record_by
from deer.accounts.models import User
from deer.catalog.errors import InsufficientStock, ProductDeleted
from deer.catalog.events import ProductEvent, emit
from deer.catalog.models import Product, ProductStatus, StockChange, StockMovement
from deer.catalog.views import product_view
from deer.errors import NotFound


class StockMode(StrEnum):
    SET = "set"  # the stock becomes `value` (a stock-take)
    DELTA = "delta"  # `value` is added (negative: removed)


# The stock after the change and before it (the subquery locks the row and reads the version
# the update applies to). A deleted product or a result below zero changes nothing.
SET_SQL: Final = """
UPDATE product p SET stock = $2, updated_at = $3
FROM (SELECT id, stock FROM product WHERE id = $1 AND status <> $4 FOR UPDATE) AS old
WHERE p.id = old.id
RETURNING p.stock AS stock_after, old.stock AS stock_before
"""
DELTA_SQL: Final = """
UPDATE product SET stock = stock + $2, updated_at = $3
WHERE id = $1 AND status <> $4 AND stock + $2 >= 0
RETURNING stock AS stock_after, stock - $2 AS stock_before
"""


@dataclass(frozen=True)
class MovementView:
    id: int
    product_id: int
    change: StockChange
    delta: int
    stock_after: int
    reason: str
    user: Ref | None
    order_id: int | None
    created_at: dt.datetime


async def adjust_stock(
    actor: Actor, product_id: int, mode: StockMode, value: int, reason: str
) -> MovementView:
    """Set the stock or add to it; refused (nothing changes) below zero or on a deleted product."""
    sql = SET_SQL if mode == StockMode.SET else DELTA_SQL
    async with in_transaction() as connection:
        rows = await connection.execute_query_dict(
            sql, [product_id, value, dt.datetime.now(dt.UTC), ProductStatus.DELETED.value]
        )
        if not rows:
            await _refusal(product_id, value)
        after, before = int(rows[0]["stock_after"]), int(rows[0]["stock_before"])
        change = StockChange.SET if mode == StockMode.SET else StockChange.DELTA
        movement = await StockMovement.create(
            product_id=product_id,
            change=change,
            delta=after - before,
            stock_after=after,
            reason=reason,
            user_id=actor.principal.id,
        )
        await record_by(
            actor,
            "product.stock",
            "product",
            product_id,
            mode=str(mode),
            value=value,
            stock=[before, after],
            reason=reason,
        )
        await emit(
            ProductEvent.STOCK_CHANGED,
            await product_view(product_id),
            change=str(change),
            delta=after - before,
            stock_after=after,
            reason=reason,
        )
    return (await _views([movement]))[0]


async def _refusal(product_id: int, delta: int) -> None:
    """Say why the conditional update changed nothing (the reading is for the message only)."""
    rows = await Product.filter(id=product_id).values("status", "stock")
    if not rows:
        raise NotFound(f"no product has the id {product_id}")
    if rows[0]["status"] == ProductStatus.DELETED:
        raise ProductDeleted(product_id=product_id)
    stock = int(rows[0]["stock"])
    raise InsufficientStock(
        f"the stock is {stock}: removing {-delta} would leave it below zero",
        stock=stock,
        delta=delta,
    )


async def list_movements(product_id: int, paging: Paging) -> Page[MovementView]:
    """A product's stock ledger, newest first."""
    if not await Product.exists(id=product_id):
        raise NotFound(f"no product has the id {product_id}")
    movements, total = await paged(
        StockMovement.filter(product_id=product_id), paging, "-created_at", "-id"
    )
    return Page(await _views(movements), total, paging.page, paging.size)


async def _views(movements: list[StockMovement]) -> list[MovementView]:
    users = await refs(User, (movement.user_id for movement in movements))
    return [
        MovementView(
            id=movement.id,
            product_id=movement.product_id,
            change=StockChange(movement.change),
            delta=movement.delta,
            stock_after=movement.stock_after,
            reason=movement.reason,
            user=users.get(movement.user_id or 0),
            order_id=movement.order_id,
            created_at=movement.created_at,
        )
        for movement in movements
    ]
