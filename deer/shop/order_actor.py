"""The order actor: one per order (key = order id), the whole state machine of DOMAIN.md.

```
pending_payment --paid in full--> paid --ship--> shipped --confirm / auto--> completed
pending_payment --buyer cancels / payment timeout--> cancelled
paid | shipped --refund (partial allowed, up to paid)--> refunding
refunding --refund succeeded, fully refunded--> refunded
refunding --refund succeeded in part, or failed--> back to paid | shipped
```

Every command carries `op` and `at` (Unix ms, stamped by the sender, so a turn handled again
after a crash computes the same state). Every reply is `{"order": state, "applied": bool}`:
`applied` is False for a repeat (a payment notify replayed, a reminder fired twice). An illegal
command raises a domain error: the runtime refuses it and `ask` raises it again.

Effects outside the actor's own row are idempotent by the order id (stock, member points) or
by the refund number (the provider's refund call), so repeating a turn repeats nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final, Literal, Protocol

from actors.base import Actor, JsonObject, Outcome, Reminder
from config.settings import Settings
from deer.accounts import points
from deer.catalog import sellable
from deer.errors import DeerError, ValidationFailed
from deer.shop import stock
from deer.shop.errors import (
    AmountMismatch,
    IdempotencyKeyReused,
    IllegalTransition,
    NotSellable,
    OrderNotFound,
    OutOfStock,
    RefundExceedsPaid,
    RefundInProgress,
    UnknownRefund,
)

log = logging.getLogger(__name__)

KIND: Final = "order"
PAYMENT_TIMEOUT: Final = "payment-timeout"
AUTO_COMPLETE: Final = "auto-complete"
REFUND_RETRY_BASE: Final = 30.0  # seconds before submitting a refund again after a failure
REFUND_RETRY_MAX: Final = 3600.0
REFUND_ATTEMPTS: Final = 12  # then the refund is marked failed and ops are told


class Status(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    REFUNDING = "refunding"
    REFUNDED = "refunded"


class RefundStatus(StrEnum):
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RefundOrder:
    """What the payment provider needs to refund part of an order."""

    provider: str
    out_trade_no: str
    out_refund_no: str
    amount: int
    total: int
    reason: str


RefundOutcome = Literal["succeeded", "processing", "failed"]


class RefundGateway(Protocol):
    """Submits refunds to payment providers (idempotent by `out_refund_no`)."""

    async def submit(self, refund: RefundOrder) -> RefundOutcome:
        """`succeeded` at once, `processing` (the result comes by notice) or `failed` for
        good. Raises a `DeerError` when the provider could not take it: submitted again later."""
        ...


def order_sn(order_id: int, at_ms: int, settings: Settings) -> str:
    """`yyMMddHHmmss` (business time zone) + 6 digits of the id + 2 check digits: unique
    while fewer than a million orders are created in one second."""
    stamp = dt.datetime.fromtimestamp(at_ms / 1000, settings.zone).strftime("%y%m%d%H%M%S")
    check = int.from_bytes(hashlib.blake2b(str(order_id).encode(), digest_size=2).digest()) % 100
    return f"{stamp}{order_id % 1_000_000:06d}{check:02d}"


def iso(at_ms: int) -> str:
    return dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).isoformat()


Handler = Callable[[JsonObject, JsonObject], Awaitable[Outcome]]


class OrderActor(Actor):
    kind: ClassVar[str] = KIND

    def __init__(self, settings: Settings, refunds: RefundGateway | None = None) -> None:
        self.settings = settings
        self.refunds = refunds
        self._ops: dict[str, Handler] = {
            "create": self._create,
            "cancel": self._cancel,
            "expire": self._expire,
            "paid": self._paid,
            "ship": self._ship,
            "confirm": self._confirm,
            "auto_complete": self._auto_complete,
            "refund": self._refund,
            "submit_refund": self._submit_refund,
            "refund_result": self._refund_result,
        }

    async def handle(self, key: str, state: JsonObject, command: JsonObject) -> Outcome:
        op = self._ops.get(str(command.get("op")))
        if op is None:
            raise ValidationFailed(f"unknown order command {command.get('op')!r}")
        if command.get("op") != "create" and not state.get("status"):
            raise OrderNotFound()
        return await op(state, command)

    # --- creation -----------------------------------------------------------------------

    async def _create(self, state: JsonObject, command: JsonObject) -> Outcome:
        if state.get("status"):  # the same Idempotency-Key again: the order as it is
            if state["body_hash"] != command["body_hash"]:
                raise IdempotencyKeyReused()
            return _same(state)
        order_id, at = int(command["order_id"]), int(command["at"])
        wanted: list[tuple[int, int]] = [(int(p), int(q)) for p, q in command["lines"]]
        offers = await sellable.offers(
            [product for product, _ in wanted],
            sellable.Channel(command["channel"]),
            dt.datetime.fromtimestamp(at / 1000, dt.UTC),
        )
        refused = [
            {"product_id": product, "reason": offers[product].why_not}
            for product, _ in wanted
            if not offers[product].sellable
        ]
        if refused:
            raise NotSellable(products=refused)
        shortages = await stock.reserve(order_id, wanted)
        if shortages:
            raise OutOfStock(
                products=[
                    {"product_id": s.product_id, "wanted": s.wanted, "available": s.available}
                    for s in shortages
                ]
            )
        lines: list[JsonObject] = [
            {
                "product_id": product,
                "code": offers[product].code,
                "name": offers[product].name,
                "image": offers[product].image,
                "price": offers[product].price,
                "cost": offers[product].cost,
                "quantity": quantity,
                "amount": offers[product].price * quantity,
            }
            for product, quantity in wanted
        ]
        total = sum(offers[product].price * quantity for product, quantity in wanted)
        created: JsonObject = {
            "id": order_id,
            "sn": order_sn(order_id, at, self.settings),
            "member_id": int(command["member_id"]),
            "status": Status.PENDING_PAYMENT,
            "channel": command["channel"],
            "lines": lines,
            "total": total,
            "discount": 0,
            "payable": total,
            "paid": 0,
            "refunded": 0,
            "address": command["address"],
            "remark": command.get("remark", ""),
            "from_cart": bool(command.get("from_cart")),
            "body_hash": command["body_hash"],
            "payments": [],
            "refunds": [],
            "shipment": None,
            "cancel": None,
            "created_ms": at,
            "times": {"created_at": iso(at)},
        }
        expires = at / 1000 + self.settings.order_payment_timeout
        created["times"]["payment_due_at"] = iso(int(expires * 1000))
        return Outcome(
            state=created,
            reply={"order": created, "applied": True},
            events=[_event("order.created", created, at)],
            reminders=[Reminder(expires, _due("expire", expires), PAYMENT_TIMEOUT)],
        )

    # --- before payment -----------------------------------------------------------------

    async def _cancel(self, state: JsonObject, command: JsonObject) -> Outcome:
        _require(state, "cancel", Status.PENDING_PAYMENT)
        return await self._cancelled(state, command, by=str(command.get("by", "buyer")))

    async def _expire(self, state: JsonObject, command: JsonObject) -> Outcome:
        """The payment timeout's reminder: cancels an order still unpaid, else nothing."""
        if state["status"] != Status.PENDING_PAYMENT:
            return _same(state)
        return await self._cancelled(state, command, by="timeout")

    async def _cancelled(self, state: JsonObject, command: JsonObject, *, by: str) -> Outcome:
        at = int(command["at"])
        await stock.release(int(state["id"]), f"order {state['sn']} cancelled ({by})")
        cancelled = {
            **state,
            "status": Status.CANCELLED,
            "cancel": {
                "by": by,
                "reason": command.get("reason", ""),
                "user_id": command.get("user_id"),
            },
            "times": {**state["times"], "cancelled_at": iso(at)},
        }
        return Outcome(
            state=cancelled,
            reply={"order": cancelled, "applied": True},
            events=[_event("order.cancelled", cancelled, at, by=by)],
            cancel_reminders=[PAYMENT_TIMEOUT],
        )

    async def _paid(self, state: JsonObject, command: JsonObject) -> Outcome:
        transaction = str(command["transaction_id"])
        if any(payment["transaction_id"] == transaction for payment in state["payments"]):
            return _same(state)
        _require(state, "pay", Status.PENDING_PAYMENT)
        amount, due = int(command["amount"]), state["payable"] - state["paid"]
        if amount != due:
            raise AmountMismatch(expected=due, received=amount)
        at = int(command["at"])
        order_id = int(state["id"])
        await stock.mark_sold(order_id)
        await points.record_paid_order(self.settings, state["member_id"], order_id, amount)
        paid = {
            **state,
            "status": Status.PAID,
            "paid": state["paid"] + amount,
            "payments": [
                *state["payments"],
                {
                    "provider": command["provider"],
                    "transaction_id": transaction,
                    "amount": amount,
                    "paid_at": command.get("paid_at") or iso(at),
                },
            ],
            "times": {**state["times"], "paid_at": iso(at)},
        }
        return Outcome(
            state=paid,
            reply={"order": paid, "applied": True},
            events=[_event("order.paid", paid, at, amount=amount)],
            cancel_reminders=[PAYMENT_TIMEOUT],
        )

    # --- fulfilment ---------------------------------------------------------------------

    async def _ship(self, state: JsonObject, command: JsonObject) -> Outcome:
        _require(state, "ship", Status.PAID)
        at = int(command["at"])
        shipped = {
            **state,
            "status": Status.SHIPPED,
            "shipment": {
                "carrier": command["carrier"],
                "tracking_no": command["tracking_no"],
                "user_id": command.get("user_id"),
            },
            "times": {**state["times"], "shipped_at": iso(at)},
        }
        completes = at / 1000 + self.settings.order_auto_complete
        return Outcome(
            state=shipped,
            reply={"order": shipped, "applied": True},
            events=[_event("order.shipped", shipped, at)],
            reminders=[Reminder(completes, _due("auto_complete", completes), AUTO_COMPLETE)],
        )

    async def _confirm(self, state: JsonObject, command: JsonObject) -> Outcome:
        _require(state, "confirm", Status.SHIPPED)
        return self._completed(state, int(command["at"]), by="buyer")

    async def _auto_complete(self, state: JsonObject, command: JsonObject) -> Outcome:
        if state["status"] != Status.SHIPPED:
            return _same(state)
        return self._completed(state, int(command["at"]), by="auto")

    def _completed(self, state: JsonObject, at: int, *, by: str) -> Outcome:
        completed = {
            **state,
            "status": Status.COMPLETED,
            "completed_by": by,
            "times": {**state["times"], "completed_at": iso(at)},
        }
        return Outcome(
            state=completed,
            reply={"order": completed, "applied": True},
            events=[_event("order.completed", completed, at, by=by)],
            cancel_reminders=[AUTO_COMPLETE],
        )

    # --- refunds ------------------------------------------------------------------------

    async def _refund(self, state: JsonObject, command: JsonObject) -> Outcome:
        number = str(command["no"])
        if any(refund["no"] == number for refund in state["refunds"]):
            return _same(state)
        if state["status"] == Status.REFUNDING:
            raise RefundInProgress()
        _require(state, "refund", Status.PAID, Status.SHIPPED)
        amount, left = int(command["amount"]), state["paid"] - state["refunded"]
        if amount > left:
            raise RefundExceedsPaid(requested=amount, refundable=left)
        at = int(command["at"])
        refund = {
            "no": number,
            "amount": amount,
            "reason": command.get("reason", ""),
            "status": RefundStatus.PROCESSING,
            "user_id": command.get("user_id"),
            "provider": state["payments"][-1]["provider"],
            "submitted": False,
            "attempts": 0,
            "error": "",
            "requested_at": iso(at),
        }
        refunding = {
            **state,
            "status": Status.REFUNDING,
            "refund_from": state["status"],
            "refunds": [*state["refunds"], refund],
            "times": {**state["times"], "refunding_at": iso(at)},
        }
        return Outcome(
            state=refunding,
            reply={"order": refunding, "applied": True},
            events=[
                _event("order.refund_requested", refunding, at, refund_no=number, amount=amount)
            ],
            reminders=[
                Reminder(at / 1000, {"op": "submit_refund", "no": number}, _submit_id(number))
            ],
        )

    async def _submit_refund(self, state: JsonObject, command: JsonObject) -> Outcome:
        """A reminder: hand the refund to the provider (again after a failure, with backoff)."""
        refund = _refund_of(state, str(command["no"]))
        if refund["status"] != RefundStatus.PROCESSING or refund["submitted"]:
            return _same(state)
        if self.refunds is None:
            raise RuntimeError("this process has no payment providers to submit refunds")
        order = RefundOrder(
            provider=refund["provider"],
            out_trade_no=state["sn"],
            out_refund_no=refund["no"],
            amount=refund["amount"],
            total=state["paid"],
            reason=refund["reason"],
        )
        now = int(time.time() * 1000)
        try:
            done = await self.refunds.submit(order)
        except DeerError as exc:  # the provider refused or is away: try again later
            return self._refund_retry(state, refund, exc.message, now)
        if done != "processing":
            return await self._refund_settled(state, refund["no"], RefundStatus(done), now)
        submitted = _with_refund(state, {**refund, "submitted": True, "error": ""})
        return Outcome(state=submitted, reply={"order": submitted, "applied": True})

    def _refund_retry(self, state: JsonObject, refund: JsonObject, error: str, now: int) -> Outcome:
        attempts = refund["attempts"] + 1
        if attempts >= REFUND_ATTEMPTS:
            log.error(
                "order %s: refund %s failed %d times: %s",
                state["sn"],
                refund["no"],
                attempts,
                error,
            )
            failed = {**refund, "attempts": attempts, "error": error}
            return self._refund_failed(_with_refund(state, failed), failed, now)
        retried = _with_refund(state, {**refund, "attempts": attempts, "error": error})
        delay = min(REFUND_RETRY_BASE * 2 ** (attempts - 1), REFUND_RETRY_MAX)
        again = Reminder(
            now / 1000 + delay,
            {"op": "submit_refund", "no": refund["no"]},
            _submit_id(refund["no"]),
        )
        return Outcome(state=retried, reply={"order": retried, "applied": True}, reminders=[again])

    async def _refund_result(self, state: JsonObject, command: JsonObject) -> Outcome:
        """The provider's answer on a refund (its notify): succeeded or failed, applied once."""
        refund = _refund_of(state, str(command["no"]))
        if refund["status"] != RefundStatus.PROCESSING:
            return _same(state)
        outcome = RefundStatus(command["status"])
        return await self._refund_settled(state, refund["no"], outcome, int(command["at"]))

    async def _refund_settled(
        self, state: JsonObject, number: str, outcome: RefundStatus, at: int
    ) -> Outcome:
        refund = _refund_of(state, number)
        if outcome is RefundStatus.FAILED:
            return self._refund_failed(state, refund, at)
        order_id, amount = int(state["id"]), int(refund["amount"])
        await points.record_refund(self.settings, state["member_id"], order_id, number, amount)
        refunded_total = state["refunded"] + amount
        fully = refunded_total >= state["paid"]
        if fully and state["refund_from"] == Status.PAID:  # nothing was shipped: back to stock
            await stock.restore(order_id, f"order {state['sn']} refunded before shipping")
        settled = _with_refund(
            state, {**refund, "status": RefundStatus.SUCCEEDED, "completed_at": iso(at)}
        )
        settled["refunded"] = refunded_total
        settled["status"] = Status.REFUNDED if fully else state["refund_from"]
        if fully:
            settled["times"] = {**state["times"], "refunded_at": iso(at)}
        return Outcome(
            state=settled,
            reply={"order": settled, "applied": True},
            events=[
                _event("order.refunded", settled, at, refund_no=number, amount=amount, fully=fully)
            ],
            cancel_reminders=[_submit_id(number)],
        )

    def _refund_failed(self, state: JsonObject, refund: JsonObject, at: int) -> Outcome:
        failed = _with_refund(
            state, {**refund, "status": RefundStatus.FAILED, "completed_at": iso(at)}
        )
        failed["status"] = state["refund_from"]
        return Outcome(
            state=failed,
            reply={"order": failed, "applied": True},
            events=[_event("order.refund_failed", failed, at, refund_no=refund["no"])],
            cancel_reminders=[_submit_id(refund["no"])],
        )


def _due(op: str, at: float) -> JsonObject:
    """A reminder's command: it carries the time it is due as its `at`, like a sender's."""
    return {"op": op, "at": int(at * 1000)}


def _same(state: JsonObject) -> Outcome:
    return Outcome(state=state, reply={"order": state, "applied": False})


def _require(state: JsonObject, action: str, *allowed: Status) -> None:
    if state["status"] not in allowed:
        raise IllegalTransition(
            f"an order that is {state['status']} cannot {action} (only {' or '.join(allowed)})",
            action=action,
            status=state["status"],
        )


def _refund_of(state: JsonObject, number: str) -> JsonObject:
    for refund in state["refunds"]:
        if refund["no"] == number:
            found: JsonObject = refund
            return found
    raise UnknownRefund(refund_no=number)


def _with_refund(state: JsonObject, refund: JsonObject) -> JsonObject:
    refunds = [refund if item["no"] == refund["no"] else item for item in state["refunds"]]
    return {**state, "refunds": refunds}


def _submit_id(number: str) -> str:
    return f"refund-{number}"


def _event(kind: str, order: JsonObject, at: int, **extra: Any) -> JsonObject:
    return {
        "type": kind,
        "order_id": order["id"],
        "sn": order["sn"],
        "member_id": order["member_id"],
        "status": order["status"],
        "payable": order["payable"],
        "paid": order["paid"],
        "refunded": order["refunded"],
        "lines": [
            {"product_id": line["product_id"], "quantity": line["quantity"]}
            for line in order["lines"]
        ],
        "at": iso(at),
        **extra,
    }


def merged_lines(lines: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Lines with one entry per product (quantities added), in first-seen order."""
    merged: dict[int, int] = {}
    for product, quantity in lines:
        merged[product] = merged.get(product, 0) + quantity
    return list(merged.items())
