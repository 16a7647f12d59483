"""The member's cart: `/api/cart`. Members only (`callers`): the cart is always the
caller's own (its key is the caller's id; no id in the path), so there is no one else's cart to
reach. Every write answers with the whole cart, as `GET` does."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

from aiohttp import web
from pydantic import BaseModel, Field, field_validator, model_validator

from deer import keys
from deer.accounts.admin_common_http import Id, Strict, path_id, reject_null
from deer.catalog.sellable import Channel, Unsellable
from deer.shop import cart
from deer.web.api import Api
from deer.web.auth import principal_of

api = Api(tags=["cart"], callers="members")

ITEM: Final = "/api/cart/items/{product_id}"

Quantity = Annotated[int, Field(ge=1, le=cart.MAX_QUANTITY, description="1 to 99")]


class ChannelQuery(Strict):
    channel: Channel = Field(
        default=Channel.WEB, description="where the member shops: decides what is sellable"
    )


class ItemIn(Strict):
    product_id: Id
    quantity: Quantity = 1
    selected: bool = True


class ItemPatch(Strict):
    quantity: Quantity | None = None
    selected: bool | None = None

    _present = field_validator("quantity", "selected")(reject_null)

    @model_validator(mode="after")
    def _something(self) -> ItemPatch:
        if not self.model_fields_set:
            raise ValueError("send `quantity`, `selected` or both")
        return self


class CartPatch(Strict):
    selected: bool = Field(description="select (true) or unselect (false) every line")


class CartLineOut(BaseModel):
    product_id: int
    code: str
    name: str
    image: str | None
    price: int = Field(description="current unit price, fen")
    added_price: int = Field(description="unit price when the member last added it, fen")
    price_changed: bool = Field(description="`price` differs from `added_price`")
    quantity: int
    selected: bool
    line_total: int = Field(description="price × quantity, fen")
    sellable: bool = Field(description="can be bought now on the channel asked about")
    why_not: Unsellable | None = Field(
        description="why not: missing, not_online, not_started, ended, channel"
    )
    low_stock: bool = Field(description="more wanted than in stock now; checkout will refuse")
    added_at: dt.datetime


class CartTotals(BaseModel):
    count: int = Field(description="selected sellable lines")
    quantity: int = Field(description="their quantities added up")
    amount: int = Field(description="their line totals added up, fen")


class CartOut(BaseModel):
    lines: list[CartLineOut] = Field(description="in the order they were added")
    totals: CartTotals = Field(description="of the selected lines that are sellable")


def cart_out(shown: cart.CartView) -> CartOut:
    return CartOut(
        lines=[CartLineOut.model_validate(line, from_attributes=True) for line in shown.lines],
        totals=CartTotals.model_validate(shown, from_attributes=True),
    )


def member_of(request: web.Request) -> int:
    return principal_of(request).id  # a member: the endpoints are declared members-only


@api.get("/api/cart", summary="My cart", query=ChannelQuery, response=CartOut)
async def get_cart(request: web.Request, query: ChannelQuery) -> CartOut:
    return cart_out(await cart.read(member_of(request), query.channel))


@api.post(
    "/api/cart/items",
    summary="Add a product (more of it if already there; at most 99 of one, 50 lines)",
    query=ChannelQuery,
    body=ItemIn,
    response=CartOut,
    errors=(409, 504),
)
async def add_item(request: web.Request, query: ChannelQuery, body: ItemIn) -> CartOut:
    shown = await cart.add(
        request.app[keys.ACTORS],
        member_of(request),
        body.product_id,
        body.quantity,
        body.selected,
        query.channel,
    )
    return cart_out(shown)


@api.patch(
    ITEM,
    summary="Change a line's quantity or selection",
    query=ChannelQuery,
    body=ItemPatch,
    response=CartOut,
    errors=(404, 504),
)
async def update_item(request: web.Request, query: ChannelQuery, body: ItemPatch) -> CartOut:
    shown = await cart.update(
        request.app[keys.ACTORS],
        member_of(request),
        path_id(request, "product_id"),
        query.channel,
        quantity=body.quantity,
        selected=body.selected,
    )
    return cart_out(shown)


@api.delete(
    ITEM,
    summary="Remove a line (no error if it is not there)",
    query=ChannelQuery,
    response=CartOut,
    errors=(404, 504),
)
async def remove_item(request: web.Request, query: ChannelQuery) -> CartOut:
    runtime, member = request.app[keys.ACTORS], member_of(request)
    shown = await cart.remove(runtime, member, path_id(request, "product_id"), query.channel)
    return cart_out(shown)


@api.patch(
    "/api/cart",
    summary="Select or unselect every line",
    query=ChannelQuery,
    body=CartPatch,
    response=CartOut,
    errors=(504,),
)
async def select_all(request: web.Request, query: ChannelQuery, body: CartPatch) -> CartOut:
    runtime, member = request.app[keys.ACTORS], member_of(request)
    return cart_out(await cart.select_all(runtime, member, body.selected, query.channel))


@api.delete(
    "/api/cart", summary="Empty my cart", query=ChannelQuery, response=CartOut, errors=(504,)
)
async def clear_cart(request: web.Request, query: ChannelQuery) -> CartOut:
    return cart_out(await cart.clear(request.app[keys.ACTORS], member_of(request), query.channel))
