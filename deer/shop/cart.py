"""The cart: one actor per member (kind `cart`, key = the member's id).

The actor keeps only what the member chose: per line the product, the quantity, the selected
flag, when it was added and the unit price the member saw then. What a member reads about a
product (name, image, current price, sellable or not, stock) is looked up fresh for every view
with one query (`sellable.offers`), so the cart shows current prices and flags the lines that
can no longer be bought. Stock is checked for real only at checkout.

Writes go through the actor, which handles one command at a time, so concurrent writes of one
member never lose an update. Reads take the committed state straight from `actor_state` (one
SELECT, no stream round trip); every write answers with the state it produced, so a client
never reads an older cart than the one its last write returned.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import orjson
from tortoise import connections

from actors.base import Actor, JsonObject, Outcome
from actors.runtime import Runtime
from deer.catalog.sellable import Channel, Unsellable, offers
from deer.errors import ValidationFailed
from deer.shop.errors import CartFull, NotInCart, NotSellable, QuantityLimit, UnknownCommand

KIND: Final = "cart"
MAX_LINES: Final = 50
MAX_QUANTITY: Final = 99
# Orders whose lines were removed, remembered so the order side may send `remove_ordered`
# again (it does so at least once) without removing a line the member added since.
ORDERS_REMEMBERED: Final = 50

Line = dict[str, Any]  # product_id, quantity, selected, added_at (ISO, UTC), added_price (fen)


def cart_key(member_id: int) -> str:
    return str(member_id)


# --- the actor -----------------------------------------------------------------------------


def _position(lines: Sequence[Line], product_id: int) -> int | None:
    for index, line in enumerate(lines):
        if line["product_id"] == product_id:
            return index
    return None


def _line_at(lines: Sequence[Line], product_id: int) -> int:
    index = _position(lines, product_id)
    if index is None:
        raise NotInCart(f"product {product_id} is not in the cart", product_id=product_id)
    return index


def _checked_quantity(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= MAX_QUANTITY:
        raise ValidationFailed(f"quantity must be a whole number from 1 to {MAX_QUANTITY}")
    return value


def _replaced(lines: Sequence[Line], index: int, line: Line) -> list[Line]:
    return [*lines[:index], line, *lines[index + 1 :]]


def _add(state: JsonObject, command: JsonObject) -> JsonObject:
    """A new line at the end, or more of a product already in the cart (refused past the
    maximum rather than capped: the member learns how many were not added)."""
    lines: list[Line] = state["lines"]
    product_id, quantity = command["product_id"], _checked_quantity(command["quantity"])
    index = _position(lines, product_id)
    if index is None:
        if len(lines) >= MAX_LINES:
            raise CartFull(f"the cart holds at most {MAX_LINES} products", max_lines=MAX_LINES)
        line = {
            "product_id": product_id,
            "quantity": quantity,
            "selected": bool(command["selected"]),
            "added_at": command["at"],
            "added_price": command["price"],
        }
        return {**state, "lines": [*lines, line]}
    current = lines[index]
    if current["quantity"] + quantity > MAX_QUANTITY:
        room = MAX_QUANTITY - current["quantity"]
        fits = f"at most {room} more fit" if room else "no more fit"
        raise QuantityLimit(
            f"at most {MAX_QUANTITY} of one product; {current['quantity']} already in the cart,"
            f" {fits}",
            product_id=product_id,
            in_cart=current["quantity"],
            max_quantity=MAX_QUANTITY,
        )
    changed = {
        **current,
        "quantity": current["quantity"] + quantity,
        "selected": bool(command["selected"]),
        "added_price": command["price"],  # the price the member saw last
    }
    return {**state, "lines": _replaced(lines, index, changed)}


def _set(state: JsonObject, command: JsonObject) -> JsonObject:
    lines: list[Line] = state["lines"]
    index = _line_at(lines, command["product_id"])
    changed = dict(lines[index])
    if command.get("quantity") is not None:
        changed["quantity"] = _checked_quantity(command["quantity"])
    if command.get("selected") is not None:
        changed["selected"] = bool(command["selected"])
    return {**state, "lines": _replaced(lines, index, changed)}


def _remove(state: JsonObject, command: JsonObject) -> JsonObject:
    """Remove a line; removing one that is not there changes nothing (a retried DELETE)."""
    lines = [line for line in state["lines"] if line["product_id"] != command["product_id"]]
    return {**state, "lines": lines}


def _clear(state: JsonObject, command: JsonObject) -> JsonObject:
    return {**state, "lines": []}


def _select_all(state: JsonObject, command: JsonObject) -> JsonObject:
    selected = bool(command["selected"])
    return {**state, "lines": [{**line, "selected": selected} for line in state["lines"]]}


def _remove_ordered(state: JsonObject, command: JsonObject) -> JsonObject:
    """An order was made from these lines: remove them, once per order."""
    order_id = command["order_id"]
    if order_id in state["orders"]:
        return state
    ordered = set(command["product_ids"])
    return {
        "lines": [line for line in state["lines"] if line["product_id"] not in ordered],
        "orders": [*state["orders"], order_id][-ORDERS_REMEMBERED:],
    }


_COMMANDS: Final[dict[str, Callable[[JsonObject, JsonObject], JsonObject]]] = {
    "add": _add,
    "set": _set,
    "remove": _remove,
    "clear": _clear,
    "select_all": _select_all,
    "remove_ordered": _remove_ordered,
}


class Cart(Actor):
    """State: `lines` in the order they were added, and the `orders` already taken out.
    Reply: the lines after the command. Refusals (`cart_full`, `quantity_limit`,
    `not_in_cart`, invalid values) leave the state as it was."""

    kind: ClassVar[str] = KIND

    def initial_state(self, key: str) -> JsonObject:
        return {"lines": [], "orders": []}

    async def handle(self, key: str, state: JsonObject, command: JsonObject) -> Outcome:
        apply = _COMMANDS.get(str(command.get("type")))
        if apply is None:
            raise UnknownCommand(f"unknown cart command {command.get('type')!r}")
        changed = apply(state, command)
        return Outcome(state=changed, reply=changed["lines"])


# --- what members see ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CartLine:
    product_id: int
    code: str
    name: str
    image: str | None
    price: int  # fen, current
    added_price: int  # fen, when the member last added it
    quantity: int
    selected: bool
    added_at: dt.datetime
    why_not: Unsellable | None  # None: sellable now on the channel viewed
    low_stock: bool  # more wanted than in stock now (checkout will refuse)

    @property
    def sellable(self) -> bool:
        return self.why_not is None

    @property
    def line_total(self) -> int:
        return self.price * self.quantity

    @property
    def price_changed(self) -> bool:
        return self.price != self.added_price

    @property
    def counted(self) -> bool:
        """In the totals: selected and sellable."""
        return self.selected and self.sellable


@dataclass(frozen=True, slots=True)
class CartView:
    lines: list[CartLine]

    @property
    def count(self) -> int:
        return sum(1 for line in self.lines if line.counted)

    @property
    def quantity(self) -> int:
        return sum(line.quantity for line in self.lines if line.counted)

    @property
    def amount(self) -> int:
        return sum(line.line_total for line in self.lines if line.counted)


async def view(lines: Sequence[Line], channel: Channel) -> CartView:
    """The lines as a member sees them on `channel`: current prices, sellable now or why not."""
    if not lines:
        return CartView([])
    found = await offers([line["product_id"] for line in lines], channel)
    shown = []
    for line in lines:
        offer = found[line["product_id"]]
        shown.append(
            CartLine(
                product_id=offer.id,
                code=offer.code,
                name=offer.name,
                image=offer.image,
                price=offer.price,
                added_price=line["added_price"],
                quantity=line["quantity"],
                selected=line["selected"],
                added_at=dt.datetime.fromisoformat(line["added_at"]),
                why_not=offer.why_not,
                low_stock=line["quantity"] > offer.stock,
            )
        )
    return CartView(shown)


async def lines_of(member_id: int) -> list[Line]:
    """The committed lines of a member's cart (one SELECT; empty if never written)."""
    rows = await connections.get("default").execute_query_dict(
        "SELECT state FROM actor_state WHERE kind = $1 AND key = $2", [KIND, cart_key(member_id)]
    )
    if not rows:
        return []
    state = rows[0]["state"]
    decoded: JsonObject = orjson.loads(state) if isinstance(state, str | bytes) else state
    lines: list[Line] = decoded["lines"]
    return lines


async def read(member_id: int, channel: Channel) -> CartView:
    return await view(await lines_of(member_id), channel)


async def _write(
    runtime: Runtime, member_id: int, command: JsonObject, channel: Channel
) -> CartView:
    lines: list[Line] = await runtime.ask(KIND, cart_key(member_id), command)
    return await view(lines, channel)


async def add(
    runtime: Runtime,
    member_id: int,
    product_id: int,
    quantity: int,
    selected: bool,
    channel: Channel,
) -> CartView:
    """Put a product in the cart if it can be bought now on `channel`.

    The check comes before the actor's turn: a product going offline in between is still
    added, and the view flags it (checkout checks everything again).
    """
    offer = (await offers([product_id], channel))[product_id]
    if offer.why_not is not None:
        raise NotSellable(
            f"product {product_id} cannot be bought now ({offer.why_not})",
            product_id=product_id,
            why_not=offer.why_not.value,
        )
    command = {
        "type": "add",
        "product_id": product_id,
        "quantity": quantity,
        "selected": selected,
        "price": offer.price,
        "at": dt.datetime.now(dt.UTC).isoformat(),
    }
    return await _write(runtime, member_id, command, channel)


async def update(
    runtime: Runtime,
    member_id: int,
    product_id: int,
    channel: Channel,
    *,
    quantity: int | None = None,
    selected: bool | None = None,
) -> CartView:
    command = {"type": "set", "product_id": product_id, "quantity": quantity, "selected": selected}
    return await _write(runtime, member_id, command, channel)


async def remove(runtime: Runtime, member_id: int, product_id: int, channel: Channel) -> CartView:
    return await _write(runtime, member_id, {"type": "remove", "product_id": product_id}, channel)


async def clear(runtime: Runtime, member_id: int, channel: Channel) -> CartView:
    return await _write(runtime, member_id, {"type": "clear"}, channel)


async def select_all(
    runtime: Runtime, member_id: int, selected: bool, channel: Channel
) -> CartView:
    return await _write(runtime, member_id, {"type": "select_all", "selected": selected}, channel)


async def remove_ordered(
    runtime: Runtime, member_id: int, product_ids: Collection[int], order_id: int
) -> list[Line]:
    """For the order side, once an order was made from the cart's selected lines: take them
    out. Safe to repeat for the same order; the remaining lines are returned."""
    command = {"type": "remove_ordered", "product_ids": list(product_ids), "order_id": order_id}
    lines: list[Line] = await runtime.ask(KIND, cart_key(member_id), command)
    return lines
