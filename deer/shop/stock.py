"""An order's stock, moved exactly once per step however often the order actor repeats it.

Reserving is the `deer_reserve_stock` function (migration 0004): all lines or none, rows locked
in id order. Releasing (cancel, payment timeout) and restoring (refund of an unshipped order)
flip the order's reservations from `reserved` and give the quantities back, in one statement;
marking the reservations sold adds them to the products' sales counts once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from tortoise import connections

from deer.catalog.models import ReservationState, StockChange


@dataclass(frozen=True, slots=True)
class Shortage:
    product_id: int
    wanted: int
    available: int


async def reserve(order_id: int, lines: Sequence[tuple[int, int]]) -> list[Shortage]:
    """Reserve `(product id, quantity)` lines (distinct products) for the order; the shortages
    (nothing reserved then), or [] when reserved now or before."""
    rows = await connections.get("default").execute_query_dict(
        "SELECT product_id, wanted, available FROM deer_reserve_stock($1, $2::bigint[],"
        " $3::bigint[])",
        [order_id, [line[0] for line in lines], [line[1] for line in lines]],
    )
    return [Shortage(row["product_id"], row["wanted"], row["available"]) for row in rows]


_GIVE_BACK: Final = """
WITH freed AS (
  UPDATE stock_reservation SET state = $2, updated_at = now()
  WHERE order_id = $1 AND state = 'reserved'
  RETURNING product_id, quantity
), moved AS (
  UPDATE product p SET stock = p.stock + f.quantity FROM freed f WHERE p.id = f.product_id
  RETURNING p.id, p.stock, f.quantity
)
INSERT INTO stock_movement (product_id, change, delta, stock_after, reason, order_id, created_at)
SELECT m.id, $3, m.quantity, m.stock, $4, $1, now() FROM moved m
"""


async def release(order_id: int, reason: str) -> None:
    """Give an unpaid order's stock back (cancelled or timed out); a second call does nothing."""
    await connections.get("default").execute_query(
        _GIVE_BACK, [order_id, ReservationState.RELEASED, StockChange.RELEASE, reason]
    )


async def restore(order_id: int, reason: str) -> None:
    """Give a refunded, unshipped order's stock back; a second call does nothing."""
    await connections.get("default").execute_query(
        _GIVE_BACK, [order_id, ReservationState.RESTORED, StockChange.RESTORE, reason]
    )


async def mark_sold(order_id: int) -> None:
    """Count a paid order's quantities in its products' sales, once."""
    await connections.get("default").execute_query(
        "WITH sold AS (UPDATE stock_reservation SET sold = true, updated_at = now()"
        " WHERE order_id = $1 AND NOT sold RETURNING product_id, quantity)"
        " UPDATE product p SET sales = p.sales + s.quantity FROM sold s"
        " WHERE p.id = s.product_id",
        [order_id],
    )
