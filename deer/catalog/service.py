"""Products: list and read, create, change, put online or take offline, delete (softly).

Members and anonymous visitors see only what `deer.catalog.sellable` calls sellable on their
channel, and never the cost; staff see every product, deleted ones only when they ask.

Status: `draft -> online <-> offline`, any -> `deleted`. A deleted product keeps its row (and
its code) for the orders that name it, but cannot be changed, sold or found by members.
An online product always has a price above 0 and at least one channel.

Every write runs in one transaction: it locks the product's row (`FOR UPDATE`) or inserts it,
writes the change, the stock movement if the stock changes, the audit record and the event
(`deer.catalog.events`). A refused write changes nothing and emits nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, TypedDict

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from deer.accounts.admin_common import (
    FOREIGN_KEY_VIOLATION,
    UNIQUE_VIOLATION,
    Page,
    Paging,
    field_changes,
    invalid,
    paged,
    violation,
)
from deer.accounts.audit import Actor, record_by
from deer.catalog.categories import category_subtree
from deer.catalog.errors import IllegalTransition, ProductCodeTaken, ProductDeleted, ProductNotReady
from deer.catalog.events import ProductEvent, emit
from deer.catalog.models import Category, Product, ProductStatus, StockChange, StockMovement
from deer.catalog.sellable import Channel, sellable_filter, why_not
from deer.catalog.views import ProductView, product_view, views_of
from deer.errors import DeerError, NotFound

# Limits of a product's fields (the API and the import check them alike).
CODE_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
URL_PATTERN: Final = r"^https?://[^\s]{1,500}$"
MAX_NAME: Final = 128
MAX_DESCRIPTION: Final = 20_000
MAX_IMAGES: Final = 20
MAX_FEN: Final = 10**12  # ten billion yuan: far above any price, far below bigint
MAX_STOCK: Final = 10**9

# Where each status may go by `online` / `offline` (deleting is allowed from any but deleted).
TRANSITIONS: Final[dict[ProductStatus, frozenset[ProductStatus]]] = {
    ProductStatus.DRAFT: frozenset({ProductStatus.ONLINE}),
    ProductStatus.ONLINE: frozenset({ProductStatus.OFFLINE}),
    ProductStatus.OFFLINE: frozenset({ProductStatus.ONLINE}),
    ProductStatus.DELETED: frozenset(),
}


class ProductSort(StrEnum):
    NEWEST = "newest"
    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    SALES = "sales"


ORDER: Final = {
    ProductSort.NEWEST: ("-created_at", "-id"),
    ProductSort.PRICE_ASC: ("price", "id"),
    ProductSort.PRICE_DESC: ("-price", "-id"),
    ProductSort.SALES: ("-sales", "-id"),
}


class ProductFields(TypedDict, total=False):
    """The fields staff edit directly (status and stock have their own operations)."""

    code: str
    name: str
    category_id: int
    description: str
    images: list[str]
    price: int
    cost: int
    channels: list[str]
    sale_start: dt.datetime | None
    sale_end: dt.datetime | None


@dataclass(frozen=True)
class ProductFilter:
    category_id: int | None = None  # this category and its subcategories
    status: ProductStatus | None = None  # staff only; None: all but deleted
    q: str | None = None  # part of the name or the code
    channel: Channel | None = None  # members: their channel (web when None)
    price_min: int | None = None
    price_max: int | None = None
    sort: ProductSort = ProductSort.NEWEST


# --- reading -------------------------------------------------------------------------------


async def list_products(
    paging: Paging, where: ProductFilter, *, staff: bool, now: dt.datetime | None = None
) -> Page[ProductView]:
    query = Product.all()
    if not staff:
        query = query.filter(sellable_filter(where.channel or Channel.WEB, now or _now()))
    else:
        if where.status is not None:
            query = query.filter(status=where.status)
        else:
            query = query.exclude(status=ProductStatus.DELETED)
        if where.channel is not None:
            query = query.filter(channels__contains=[where.channel.value])
    if where.category_id is not None:
        query = query.filter(category_id__in=await category_subtree(where.category_id))
    if where.q:
        query = query.filter(Q(name__icontains=where.q) | Q(code__icontains=where.q))
    if where.price_min is not None:
        query = query.filter(price__gte=where.price_min)
    if where.price_max is not None:
        query = query.filter(price__lte=where.price_max)
    products, total = await paged(query, paging, *ORDER[where.sort])
    return Page(await views_of(products), total, paging.page, paging.size)


async def get_product(
    product_id: int, *, staff: bool, channel: Channel = Channel.WEB, now: dt.datetime | None = None
) -> ProductView:
    """One product: any for staff; for members only a sellable one (else 404, as if missing)."""
    product = await Product.get_or_none(id=product_id)
    if product is None or (not staff and _unsellable(product, channel, now or _now())):
        raise NotFound(f"no product has the id {product_id}")
    return (await views_of([product]))[0]


def _unsellable(product: Product, channel: Channel, now: dt.datetime) -> bool:
    reason = why_not(
        product.status, product.channels, product.sale_start, product.sale_end, channel, now
    )
    return reason is not None


# --- checks --------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def check_transition(current: ProductStatus, wanted: ProductStatus) -> None:
    if current == ProductStatus.DELETED:
        raise ProductDeleted()
    if wanted == ProductStatus.DELETED or wanted in TRANSITIONS[current]:
        return
    raise IllegalTransition(
        f"a product cannot go from {current} to {wanted}",
        **{"from": str(current), "to": str(wanted)},
    )


def check_ready(price: int, channels: Collection[str]) -> None:
    """An online product needs a price above 0 and a channel: say which is missing."""
    missing = [name for name, ok in (("price", price > 0), ("channels", bool(channels))) if not ok]
    if missing:
        wants = {"price": "a price above 0", "channels": "at least one channel"}
        raise ProductNotReady(
            f"to be online the product needs {' and '.join(wants[m] for m in missing)}",
            missing=missing,
        )


def check_window(start: dt.datetime | None, end: dt.datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        raise invalid("sale_end", "must be after sale_start")


async def check_category(category_id: int) -> None:
    if not await Category.exists(id=category_id):
        raise invalid("category_id", f"no category has the id {category_id}")


def product_conflict(exc: IntegrityError) -> DeerError:
    state, _ = violation(exc)
    if state == UNIQUE_VIOLATION:
        return ProductCodeTaken()
    if state == FOREIGN_KEY_VIOLATION:
        return invalid("category_id", "this category was just deleted")
    raise exc


async def locked_product(product_id: int) -> Product:
    """The product's row, locked `FOR UPDATE` until the transaction ends; a deleted one
    is refused (it cannot change any more)."""
    product = await Product.filter(id=product_id).select_for_update().first()
    if product is None:
        raise NotFound(f"no product has the id {product_id}")
    if product.status == ProductStatus.DELETED:
        raise ProductDeleted(product_id=product_id)
    return product


# --- writes (inside a transaction; the import applies rows with them too) --------------------


async def insert_product(
    actor: Actor,
    fields: ProductFields,
    *,
    stock: int = 0,
    status: ProductStatus = ProductStatus.DRAFT,
    stock_change: StockChange = StockChange.SET,
    stock_reason: str = "initial stock",
    via: str = "api",
) -> ProductView:
    """Create a product in the current transaction (`fields` holds at least code, name,
    category_id and price)."""
    await check_category(fields["category_id"])
    check_window(fields.get("sale_start"), fields.get("sale_end"))
    if status == ProductStatus.ONLINE:
        check_ready(fields["price"], fields.get("channels", []))
    product = await Product.create(**fields, stock=stock, status=status)
    if stock:
        await StockMovement.create(
            product_id=product.id,
            change=stock_change,
            delta=stock,
            stock_after=stock,
            reason=stock_reason,
            user_id=actor.principal.id,
        )
    await record_by(
        actor,
        "product.create",
        "product",
        product.id,
        code=product.code,
        name=product.name,
        price=product.price,
        stock=stock,
        status=str(status),
        via=via,
    )
    view = (await views_of([product]))[0]
    await emit(ProductEvent.CREATED, view)
    return view


async def change_product(
    actor: Actor,
    product: Product,
    wanted: ProductFields,
    *,
    stock: int | None = None,
    status: ProductStatus | None = None,
    stock_change: StockChange = StockChange.IMPORT,
    stock_reason: str = "",
    via: str = "api",
) -> ProductView | None:
    """Change a locked product's fields (and, for the import, its stock and status) in the
    current transaction; None when nothing changes (no write, no event)."""
    current = {name: getattr(product, name) for name in wanted}
    changes = field_changes(current, dict(wanted))
    values: dict[str, Any] = {name: value for name, value in wanted.items() if name in changes}
    if status is not None and status != product.status:
        check_transition(product.status, status)
        changes["status"] = [str(product.status), str(status)]
        values["status"] = status
    if stock is not None and stock != product.stock:
        changes["stock"] = [product.stock, stock]
        values["stock"] = stock
    if not changes:
        return None

    def after(name: str) -> Any:
        return values.get(name, getattr(product, name))

    check_window(after("sale_start"), after("sale_end"))
    if after("status") == ProductStatus.ONLINE:
        check_ready(after("price"), after("channels"))
    if "category_id" in changes:
        await check_category(values["category_id"])
    await Product.filter(id=product.id).update(**values, updated_at=_now())
    if "stock" in changes:
        await StockMovement.create(
            product_id=product.id,
            change=stock_change,
            delta=values["stock"] - product.stock,
            stock_after=values["stock"],
            reason=stock_reason,
            user_id=actor.principal.id,
        )
    await record_by(actor, "product.update", "product", product.id, changes=changes, via=via)
    view = await product_view(product.id)
    await emit(ProductEvent.UPDATED, view, changes=sorted(changes))
    return view


# --- the operations of the API ---------------------------------------------------------------


async def create_product(
    actor: Actor, fields: ProductFields, *, stock: int, status: ProductStatus
) -> ProductView:
    try:
        async with in_transaction():
            return await insert_product(actor, fields, stock=stock, status=status)
    except IntegrityError as exc:
        raise product_conflict(exc) from None


async def update_product(actor: Actor, product_id: int, wanted: ProductFields) -> ProductView:
    try:
        async with in_transaction():
            product = await locked_product(product_id)
            view = await change_product(actor, product, wanted)
    except IntegrityError as exc:
        raise product_conflict(exc) from None
    return view or await product_view(product_id)


async def set_status(actor: Actor, product_id: int, status: ProductStatus) -> ProductView:
    """Put a product online, take it offline or delete it (softly)."""
    async with in_transaction():
        product = await locked_product(product_id)
        before = ProductStatus(product.status)
        check_transition(before, status)
        if status == ProductStatus.ONLINE:
            check_ready(product.price, product.channels)
        await Product.filter(id=product_id).update(status=status, updated_at=_now())
        action = "product.delete" if status == ProductStatus.DELETED else f"product.{status}"
        await record_by(
            actor, action, "product", product_id, code=product.code, **{"from": str(before)}
        )
        view = await product_view(product_id)
        if status == ProductStatus.DELETED:
            await emit(ProductEvent.DELETED, view, **{"from": str(before)})
        else:
            await emit(
                ProductEvent.STATUS_CHANGED, view, **{"from": str(before), "to": str(status)}
            )
    return view
