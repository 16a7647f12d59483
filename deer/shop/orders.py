"""Orders as the rest of the app sees them: placing one (idempotently), commanding it through
its actor, and finding orders (the order center's lists read `actor_state` directly).

An order's state is the order actor's row in `actor_state` (kind `order`, key = order id);
migration 0004 indexes it for the lists (member, status, sn, id). A read is one SELECT and
sees every committed turn: an `ask` answers only after its turn committed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson
from tortoise import connections

from actors.base import JsonObject
from actors.runtime import Runtime
from deer.shop.errors import IdempotencyKeyReused, OrderNotFound
from deer.shop.order_actor import KIND, merged_lines

EXPORT_CHUNK: Final = 500


def now_ms() -> int:
    return int(time.time() * 1000)


def body_hash(body: JsonObject) -> str:
    """The fingerprint of an order request: the same key with another body is a conflict."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def order_id_for(member_id: int, idempotency_key: str, fingerprint: str) -> int:
    """The order id of this (member, key): made by the first request, found by the others
    (concurrent ones wait on the unique index); `IdempotencyKeyReused` for another body."""
    connection = connections.get("default")
    rows = await connection.execute_query_dict(
        "INSERT INTO order_request (member_id, idempotency_key, body_hash, created_at)"
        " VALUES ($1, $2, $3, now()) ON CONFLICT (member_id, idempotency_key) DO NOTHING"
        " RETURNING id",
        [member_id, idempotency_key, fingerprint],
    )
    if rows:
        made: int = rows[0]["id"]
        return made
    rows = await connection.execute_query_dict(
        "SELECT id, body_hash FROM order_request WHERE member_id = $1 AND idempotency_key = $2",
        [member_id, idempotency_key],
    )
    if rows[0]["body_hash"] != fingerprint:
        raise IdempotencyKeyReused()
    found: int = rows[0]["id"]
    return found


@dataclass(frozen=True, slots=True)
class Placement:
    """What a buyer asked for, validated: lines are `(product id, quantity)`."""

    member_id: int
    lines: Sequence[tuple[int, int]]
    address: JsonObject
    channel: str
    remark: str
    from_cart: bool


async def place(runtime: Runtime, order_id: int, placement: Placement, fingerprint: str) -> Any:
    """Ask the order actor to create the order (or answer it as created before)."""
    return await runtime.ask(
        KIND,
        str(order_id),
        {
            "op": "create",
            "at": now_ms(),
            "order_id": order_id,
            "member_id": placement.member_id,
            "lines": [list(line) for line in merged_lines(placement.lines)],
            "address": placement.address,
            "channel": placement.channel,
            "remark": placement.remark,
            "from_cart": placement.from_cart,
            "body_hash": fingerprint,
        },
    )


async def selected_cart_lines(member_id: int) -> list[tuple[int, int]]:
    """The selected lines of the member's cart as committed, `(product id, quantity)`."""
    rows = await connections.get("default").execute_query_dict(
        "SELECT state FROM actor_state WHERE kind = 'cart' AND key = $1", [str(member_id)]
    )
    lines = _decoded(rows[0]["state"]).get("lines", []) if rows else []
    return [(int(line["product_id"]), int(line["quantity"])) for line in lines if line["selected"]]


async def forget_ordered(runtime: Runtime, order: JsonObject) -> None:
    """Take the lines of an order placed from the cart out of the cart (a `tell`: the order
    stands whatever happens to the cart)."""
    await runtime.tell(
        "cart",
        str(order["member_id"]),
        {
            "type": "remove_ordered",
            "order_id": order["id"],
            "product_ids": [line["product_id"] for line in order["lines"]],
        },
    )


def refund_number(order: JsonObject, idempotency_key: str | None) -> str:
    """The refund's `out_refund_no`: from the Idempotency-Key when given (a retried request is
    the same refund), else the next in sequence (two clicks at once are one refund)."""
    if idempotency_key is not None:
        digest = hashlib.blake2b(idempotency_key.encode(), digest_size=4).hexdigest()
        return f"{order['sn']}R{digest}"
    return f"{order['sn']}R{len(order['refunds']) + 1:02d}"


async def ask(runtime: Runtime, order_id: int, op: str, **fields: Any) -> JsonObject:
    """Send `op` to an order: the reply, `{"order": state, "applied": bool}`."""
    reply: JsonObject = await runtime.ask(KIND, str(order_id), {"op": op, "at": now_ms(), **fields})
    return reply


async def command(runtime: Runtime, order_id: int, op: str, **fields: Any) -> JsonObject:
    """Send `op` to an order and return the order as the turn left it."""
    order: JsonObject = (await ask(runtime, order_id, op, **fields))["order"]
    return order


async def load(order_id: int) -> JsonObject:
    """The order as committed; `OrderNotFound` if there is none."""
    rows = await connections.get("default").execute_query_dict(
        "SELECT state FROM actor_state WHERE kind = $1 AND key = $2", [KIND, str(order_id)]
    )
    state = _decoded(rows[0]["state"]) if rows else {}
    if not state.get("status"):
        raise OrderNotFound()
    return state


async def find_by_sn(sn: str) -> JsonObject | None:
    rows = await connections.get("default").execute_query_dict(
        "SELECT state FROM actor_state WHERE kind = $1 AND state->>'sn' = $2", [KIND, sn]
    )
    return _decoded(rows[0]["state"]) if rows else None


@dataclass(frozen=True, slots=True)
class OrderFilter:
    member_id: int | None = None
    status: str | None = None
    sn: str | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses = ["kind = $1", "state->>'status' IS NOT NULL"]
        values: list[Any] = [KIND]

        def add(clause: str, value: Any) -> None:
            values.append(value)
            clauses.append(clause.replace("?", f"${len(values)}"))

        if self.member_id is not None:
            add("(state->>'member_id')::bigint = ?", self.member_id)
        if self.status is not None:
            add("state->>'status' = ?", self.status)
        if self.sn is not None:
            add("state->>'sn' = ?", self.sn)
        if self.created_from is not None:
            add("(state->>'created_ms')::bigint >= ?", _ms(self.created_from))
        if self.created_to is not None:
            add("(state->>'created_ms')::bigint < ?", _ms(self.created_to))
        return " AND ".join(clauses), values


async def search(found: OrderFilter, offset: int, limit: int) -> tuple[list[JsonObject], int]:
    """A page of orders, newest first, and how many match."""
    where, values = found.where()
    connection = connections.get("default")
    count = await connection.execute_query_dict(
        f"SELECT count(*) AS total FROM actor_state WHERE {where}",
        values,
    )
    rows = await connection.execute_query_dict(
        f"SELECT state FROM actor_state WHERE {where}"
        f" ORDER BY key::bigint DESC LIMIT ${len(values) + 1} OFFSET ${len(values) + 2}",
        [*values, limit, offset],
    )
    return [_decoded(row["state"]) for row in rows], int(count[0]["total"])


async def export(found: OrderFilter, cap: int) -> AsyncIterator[JsonObject]:
    """Every matching order (at most `cap`), newest first, read in chunks by id."""
    where, values = found.where()
    connection = connections.get("default")
    before: int | None = None
    sent = 0
    while sent < cap:
        bound = "" if before is None else f" AND key::bigint < ${len(values) + 2}"
        rows = await connection.execute_query_dict(
            f"SELECT key::bigint AS id, state FROM actor_state WHERE {where}{bound}"
            f" ORDER BY key::bigint DESC LIMIT ${len(values) + 1}",
            [*values, min(EXPORT_CHUNK, cap - sent), *([] if before is None else [before])],
        )
        if not rows:
            return
        for row in rows:
            yield _decoded(row["state"])
        sent += len(rows)
        before = rows[-1]["id"]


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def _decoded(value: Any) -> JsonObject:
    decoded: JsonObject = orjson.loads(value) if isinstance(value, str | bytes) else value
    return decoded
