"""The order center over HTTP: buyers place, pay, cancel and confirm their orders; ops ship,
refund and export. Every change is a command to the order's actor."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Annotated, Any, Final

from aiohttp import web
from pydantic import BaseModel, Field, StringConstraints, model_validator

from actors.base import JsonObject
from deer import keys
from deer.accounts.admin_common_http import (
    BIGINT_MAX,
    ID,
    PageQuery,
    Strict,
    actor_of,
    path_id,
)
from deer.accounts.audit import record_by
from deer.catalog.sellable import Channel
from deer.payments.provider import PrepayRequest
from deer.shop import orders, payment
from deer.shop.errors import EmptyOrder, IdempotencyKeyRequired, OrderNotFound
from deer.shop.order_actor import RefundStatus, Status
from deer.web.api import Api
from deer.web.auth import principal_of

api = Api(tags=["orders"])

MAX_LINES: Final = 50
EXPORT_CAP: Final = 100_000
IDEMPOTENCY_KEY: Final = re.compile(r"[\x21-\x7e]{1,128}")

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
ProductId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
Fen = Annotated[int, Field(ge=1, le=10**12, description="fen")]


class Address(Strict):
    receiver: Short
    mobile: Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9\- ]{5,19}$")]
    province: Short
    city: Short
    district: Annotated[str, StringConstraints(strip_whitespace=True, max_length=32)] = ""
    detail: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    postal_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")] | None = None


class LineIn(Strict):
    product_id: ProductId
    quantity: int = Field(ge=1, le=99)


class PlaceOrder(Strict):
    lines: list[LineIn] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LINES,
        description="the lines to buy; absent: the selected lines of the caller's cart",
    )
    address: Address
    channel: Channel = Channel.WEB
    remark: Text = ""


class OrderLine(BaseModel):
    product_id: int
    code: str
    name: str
    image: str | None
    price: int = Field(description="fen, at the time of the order")
    quantity: int
    amount: int = Field(description="fen")
    cost: int | None = Field(default=None, description="fen; staff only (null for buyers)")


class Payment(BaseModel):
    provider: str
    transaction_id: str
    amount: int
    paid_at: str


class Refund(BaseModel):
    no: str
    amount: int
    reason: str
    status: RefundStatus
    requested_at: str
    completed_at: str | None = None
    error: str = ""


class Shipment(BaseModel):
    carrier: str
    tracking_no: str


class OrderOut(BaseModel):
    id: int
    sn: str
    member_id: int
    status: Status
    channel: str
    lines: list[OrderLine]
    total: int = Field(description="fen")
    discount: int = Field(description="fen")
    payable: int = Field(description="fen")
    paid: int = Field(description="fen")
    refunded: int = Field(description="fen")
    address: dict[str, Any]
    remark: str
    shipment: Shipment | None
    payments: list[Payment]
    refunds: list[Refund]
    cancel: dict[str, Any] | None
    times: dict[str, str] = Field(description="created_at, payment_due_at, paid_at, ...")


class OrderPage(BaseModel):
    items: list[OrderOut]
    total: int
    page: int
    size: int


class MyOrdersQuery(PageQuery):
    status: Status | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None

    @model_validator(mode="after")
    def _range(self) -> MyOrdersQuery:
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise ValueError("created_from must be before created_to")
        return self

    def filter(self, member_id: int | None = None) -> orders.OrderFilter:
        return orders.OrderFilter(
            member_id=member_id,
            status=self.status,
            created_from=self.created_from,
            created_to=self.created_to,
        )


class AdminOrdersQuery(MyOrdersQuery):
    member_id: Annotated[int, Field(ge=1, le=BIGINT_MAX)] | None = None
    sn: Annotated[str, StringConstraints(pattern=r"^[0-9]{20}$")] | None = None

    def filter(self, member_id: int | None = None) -> orders.OrderFilter:
        return orders.OrderFilter(
            member_id=self.member_id,
            status=self.status,
            sn=self.sn,
            created_from=self.created_from,
            created_to=self.created_to,
        )


class CancelBody(Strict):
    reason: Text = ""


class ShipBody(Strict):
    carrier: Short
    tracking_no: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-]{4,40}$")]


class RefundBody(Strict):
    amount: Fen
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def order_out(order: JsonObject, *, staff: bool) -> OrderOut:
    lines = [
        OrderLine(**{**line, "cost": line["cost"] if staff else None}) for line in order["lines"]
    ]
    return OrderOut(**{**order, "lines": lines})


def _is_staff(request: web.Request) -> bool:
    return principal_of(request).kind == "staff"


async def _visible(request: web.Request) -> JsonObject:
    """The order of the path, if the caller may see it: staff (by policy) or its buyer. Another
    member's order is 404, as if it did not exist."""
    order = await orders.load(path_id(request))
    principal = principal_of(request)
    if principal.kind == "member" and order["member_id"] != principal.id:
        raise OrderNotFound()
    return order


def _idempotency_key(request: web.Request) -> str | None:
    """The request's Idempotency-Key, if it sent one; a malformed one is refused."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise IdempotencyKeyRequired()
    return key


@api.post(
    "/api/orders",
    callers="members",
    summary="Place an order (header Idempotency-Key required; lines, or the selected cart lines)",
    body=PlaceOrder,
    response=OrderOut,
    status=201,
    errors=(400, 404, 409, 504),
)
async def place_order(request: web.Request, body: PlaceOrder) -> OrderOut:
    key = _idempotency_key(request)
    if key is None:
        raise IdempotencyKeyRequired()
    member_id = principal_of(request).id
    fingerprint = orders.body_hash(body.model_dump(mode="json"))
    order_id = await orders.order_id_for(member_id, key, fingerprint)
    from_cart = body.lines is None
    lines = (
        await orders.selected_cart_lines(member_id)
        if from_cart
        else [(line.product_id, line.quantity) for line in body.lines or ()]
    )
    if not lines:
        raise EmptyOrder()
    placement = orders.Placement(
        member_id=member_id,
        lines=lines,
        address=body.address.model_dump(mode="json"),
        channel=body.channel,
        remark=body.remark,
        from_cart=from_cart,
    )
    runtime = request.app[keys.ACTORS]
    reply = await orders.place(runtime, order_id, placement, fingerprint)
    order: JsonObject = reply["order"]
    if from_cart and reply["applied"]:
        await orders.forget_ordered(runtime, order)
    return order_out(order, staff=False)


@api.get(
    "/api/orders",
    callers="members",
    summary="The caller's orders, newest first (filters: status, time)",
    query=MyOrdersQuery,
    response=OrderPage,
)
async def my_orders(request: web.Request, query: MyOrdersQuery) -> OrderPage:
    paging = query.paging
    found, total = await orders.search(
        query.filter(principal_of(request).id), paging.offset, paging.size
    )
    return OrderPage(
        items=[order_out(order, staff=False) for order in found],
        total=total,
        page=paging.page,
        size=paging.size,
    )


@api.get(f"/api/orders/{ID}", summary="One order", response=OrderOut, errors=(404,))
async def get_order(request: web.Request) -> OrderOut:
    return order_out(await _visible(request), staff=_is_staff(request))


async def _command(request: web.Request, op: str, **fields: Any) -> OrderOut:
    order = await _visible(request)
    changed = await orders.command(request.app[keys.ACTORS], order["id"], op, **fields)
    return order_out(changed, staff=_is_staff(request))


@api.post(
    f"/api/orders/{ID}/cancel",
    summary="Cancel an unpaid order (its buyer, or ops); the stock comes back",
    body=CancelBody,
    response=OrderOut,
    errors=(404, 409, 504),
)
async def cancel_order(request: web.Request, body: CancelBody) -> OrderOut:
    principal = principal_of(request)
    by = "staff" if principal.kind == "staff" else "buyer"
    changed = await _command(request, "cancel", by=by, reason=body.reason, user_id=principal.id)
    if by == "staff":
        await record_by(actor_of(request), "order.cancel", "order", changed.id, reason=body.reason)
    return changed


class PayBody(Strict):
    provider: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,15}$")] = Field(
        description="`dev` (development) or `wechatpay`"
    )


class PayOut(BaseModel):
    provider: str
    out_trade_no: str
    amount: int = Field(description="fen due")
    expires_at: dt.datetime
    params: dict[str, str] = Field(
        description="for wechatpay: the arguments of wx.requestPayment; for dev: how to simulate"
    )


@api.post(
    f"/api/orders/{ID}/pay",
    callers="members",
    summary="Start paying an unpaid order: the parameters the client pays with",
    body=PayBody,
    response=PayOut,
    errors=(404, 409, 503),
)
async def pay_order(request: web.Request, body: PayBody) -> PayOut:
    order = await _visible(request)
    payments = request.app[keys.PAYMENTS]
    provider = payments.provider(body.provider)
    settings = request.app[keys.SETTINGS]
    due = payment.due(order, settings.order_payment_timeout)
    openid = None
    if provider.name == "wechatpay":
        openid = await payment.openid_of(order["member_id"])
    params = await provider.prepay(
        PrepayRequest(
            out_trade_no=order["sn"],
            amount=due.amount,
            description=due.description,
            payer_openid=openid,
            expires_at=due.expires_at,
            notify_url=payments.notify_url(provider.name),
        )
    )
    return PayOut(
        provider=provider.name,
        out_trade_no=order["sn"],
        amount=due.amount,
        expires_at=due.expires_at,
        params=params,
    )


@api.post(
    f"/api/orders/{ID}/confirm",
    callers="members",
    summary="Confirm receipt of a shipped order (its buyer)",
    response=OrderOut,
    errors=(404, 409, 504),
)
async def confirm_order(request: web.Request) -> OrderOut:
    return await _command(request, "confirm")


@api.post(
    f"/api/orders/{ID}/ship",
    summary="Ship a paid order (ops): carrier and tracking number",
    body=ShipBody,
    response=OrderOut,
    errors=(404, 409, 504),
)
async def ship_order(request: web.Request, body: ShipBody) -> OrderOut:
    user_id = principal_of(request).id
    changed = await _command(
        request, "ship", carrier=body.carrier, tracking_no=body.tracking_no, user_id=user_id
    )
    await record_by(
        actor_of(request), "order.ship", "order", changed.id, tracking_no=body.tracking_no
    )
    return changed


@api.post(
    f"/api/orders/{ID}/refunds",
    summary="Refund a paid or shipped order, in part or in full (ops; Idempotency-Key optional)",
    body=RefundBody,
    response=OrderOut,
    status=201,
    errors=(404, 409, 504),
)
async def refund_order(request: web.Request, body: RefundBody) -> OrderOut:
    order = await _visible(request)
    key = _idempotency_key(request)
    number = orders.refund_number(order, key)
    changed = await orders.command(
        request.app[keys.ACTORS],
        order["id"],
        "refund",
        no=number,
        amount=body.amount,
        reason=body.reason,
        user_id=principal_of(request).id,
    )
    await record_by(
        actor_of(request), "order.refund", "order", order["id"], no=number, amount=body.amount
    )
    return order_out(changed, staff=True)


@api.get(
    "/api/admin/orders",
    summary="All orders, newest first (filters: status, member, sn, time range)",
    query=AdminOrdersQuery,
    response=OrderPage,
)
async def admin_orders(request: web.Request, query: AdminOrdersQuery) -> OrderPage:
    paging = query.paging
    found, total = await orders.search(query.filter(), paging.offset, paging.size)
    return OrderPage(
        items=[order_out(order, staff=True) for order in found],
        total=total,
        page=paging.page,
        size=paging.size,
    )


class ExportQuery(AdminOrdersQuery):
    page: int = 1
    size: int = 100


EXPORT_COLUMNS: Final = (
    "id",
    "sn",
    "created_at",
    "status",
    "member_id",
    "channel",
    "items",
    "total",
    "discount",
    "payable",
    "paid",
    "refunded",
    "receiver",
    "mobile",
    "address",
    "carrier",
    "tracking_no",
    "paid_at",
    "shipped_at",
    "completed_at",
    "cancelled_at",
)


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def export_row(order: JsonObject) -> list[str]:
    address = order["address"]
    shipment = order.get("shipment") or {}
    times = order["times"]
    place = "".join(
        address.get(part, "") or "" for part in ("province", "city", "district", "detail")
    )
    items = "; ".join(f"{line['name']} x{line['quantity']}" for line in order["lines"])
    values = [
        order["id"],
        order["sn"],
        times.get("created_at"),
        order["status"],
        order["member_id"],
        order["channel"],
        items,
        _yuan(order["total"]),
        _yuan(order["discount"]),
        _yuan(order["payable"]),
        _yuan(order["paid"]),
        _yuan(order["refunded"]),
        address.get("receiver"),
        address.get("mobile"),
        place,
        shipment.get("carrier"),
        shipment.get("tracking_no"),
        times.get("paid_at"),
        times.get("shipped_at"),
        times.get("completed_at"),
        times.get("cancelled_at"),
    ]
    return [_cell(value) for value in values]


@api.get(
    "/api/admin/orders/export",
    summary="The same orders as CSV (UTF-8 with BOM, money in yuan; at most 100,000 rows)",
    query=ExportQuery,
    content_type="text/csv",
)
async def export_orders(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="orders-{stamp}.csv"',
        }
    )
    await response.prepare(request)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(EXPORT_COLUMNS)
    async for order in orders.export(query.filter(), EXPORT_CAP):
        writer.writerow(export_row(order))
        if buffer.tell() > 64 * 1024:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    await record_by(actor_of(request), "order.export", "order", "", **_described(query))
    return response


def _described(query: ExportQuery) -> dict[str, Any]:
    return {
        name: str(value)
        for name, value in query.model_dump(exclude={"page", "size"}).items()
        if value is not None
    }
