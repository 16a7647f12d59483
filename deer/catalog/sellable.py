"""What a member may see and buy: the one place the rule lives.

A product is sellable on a channel when it is `online`, inside its sales window (either end
may be open) and the channel is one of its channels. The cart, the order actor and the member
views of the catalog all ask here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

import orjson
from tortoise import connections
from tortoise.expressions import Q

from deer.catalog.models import ProductStatus


class Channel(StrEnum):
    MINI_PROGRAM = "mini_program"
    WEB = "web"


class Unsellable(StrEnum):
    """Why a product cannot be bought now (shown on cart lines, refused at checkout)."""

    MISSING = "missing"  # no such product (or deleted)
    NOT_ONLINE = "not_online"  # draft or offline
    NOT_STARTED = "not_started"  # before its sales window
    ENDED = "ended"  # after its sales window
    CHANNEL = "channel"  # not sold on this channel


@dataclass(frozen=True, slots=True)
class Offer:
    """A product as a buyer meets it: the current price and whether it can be bought now."""

    id: int
    code: str
    name: str
    image: str | None
    price: int  # fen
    cost: int  # fen, kept for margins; never shown to members
    stock: int
    why_not: Unsellable | None  # None: sellable

    @property
    def sellable(self) -> bool:
        return self.why_not is None


def why_not(
    status: str,
    channels: Collection[str],
    sale_start: dt.datetime | None,
    sale_end: dt.datetime | None,
    channel: Channel,
    now: dt.datetime,
) -> Unsellable | None:
    if status == ProductStatus.DELETED:
        return Unsellable.MISSING
    if status != ProductStatus.ONLINE:
        return Unsellable.NOT_ONLINE
    if sale_start is not None and now < sale_start:
        return Unsellable.NOT_STARTED
    if sale_end is not None and now >= sale_end:
        return Unsellable.ENDED
    if channel not in channels:
        return Unsellable.CHANNEL
    return None


def sellable_filter(channel: Channel, now: dt.datetime) -> Q:
    """`why_not(...) is None` as a query filter, for lists paged in the database.

    The same rule as `why_not`, written for SQL: change both together (a test checks that
    they agree on every case).
    """
    return (
        Q(status=ProductStatus.ONLINE)
        & (Q(sale_start__isnull=True) | Q(sale_start__lte=now))
        & (Q(sale_end__isnull=True) | Q(sale_end__gt=now))
        & Q(channels__contains=[channel.value])
    )


async def offers(
    product_ids: Collection[int], channel: Channel, now: dt.datetime | None = None
) -> dict[int, Offer]:
    """The offers of these products by id (one query); a missing id maps to `MISSING`."""
    now = now or dt.datetime.now(dt.UTC)
    rows = await connections.get("default").execute_query_dict(
        "SELECT id, code, name, images, price, cost, stock, status, channels, sale_start,"
        " sale_end FROM product WHERE id = ANY($1::bigint[])",
        [list(product_ids)],
    )
    found: dict[int, Offer] = {}
    for row in rows:
        images = _json_list(row["images"])
        found[row["id"]] = Offer(
            id=row["id"],
            code=row["code"],
            name=row["name"],
            image=images[0] if images else None,
            price=row["price"],
            cost=row["cost"],
            stock=row["stock"],
            why_not=why_not(
                row["status"],
                _json_list(row["channels"]),
                row["sale_start"],
                row["sale_end"],
                channel,
                now,
            ),
        )
    for product_id in product_ids:
        if product_id not in found:
            found[product_id] = Offer(product_id, "", "", None, 0, 0, 0, Unsellable.MISSING)
    return found


def _json_list(value: object) -> list[str]:
    decoded = orjson.loads(value) if isinstance(value, str | bytes) else value
    return [str(item) for item in decoded] if isinstance(decoded, list) else []
