"""The payment provider interface the order side calls, and the sink it provides.

An order asks a provider to `prepay` (the parameters the client needs to pay) and to
`refund`; both are idempotent by the merchant's numbers (`out_trade_no`, `out_refund_no`), so
a request that timed out may be sent again as it was. The provider's callbacks reach
`POST /api/payments/{provider}/notify`: `parse_notify` verifies and reads them into a
`PaymentEvent`, `deer.payments.notices` records it once and hands it to the `PaymentSink`
(the order side), which applies it or says why not.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, get_args

from deer.payments.errors import BadSignature, InvalidPaymentRequest, MalformedNotice

EventType = Literal["payment.succeeded", "refund.succeeded", "refund.abnormal", "refund.failed"]
EVENT_TYPES: Final[tuple[str, ...]] = get_args(EventType)
RefundStatus = Literal["processing", "succeeded", "abnormal", "closed"]

# WeChat Pay's rule for merchant numbers; the dev provider keeps the same so nothing that
# works in development breaks in production.
MERCHANT_NO: Final = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
MAX_AMOUNT: Final = 2**31 - 1  # fen: WeChat Pay's amounts are 32-bit integers
MAX_DESCRIPTION: Final = 127
MAX_REASON: Final = 80
MAX_PROVIDER_ID: Final = 64  # payment_notice.transaction_id and out_trade_no


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name whatever its case (aiohttp's headers already ignore it; dicts don't)."""
    found = headers.get(name)
    if found is not None:
        return found
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _check_number(name: str, value: str) -> None:
    if not MERCHANT_NO.fullmatch(value):
        raise InvalidPaymentRequest(
            f"{name} must be 6 to 32 letters, digits or _-|*", field=name, value=value
        )


def _check_amount(name: str, value: int) -> None:
    if isinstance(value, bool) or not 1 <= value <= MAX_AMOUNT:
        raise InvalidPaymentRequest(f"{name} must be 1 to {MAX_AMOUNT} fen", field=name)


@dataclass(frozen=True)
class PrepayRequest:
    out_trade_no: str
    amount: int  # fen
    description: str  # shown in the buyer's bill
    payer_openid: str | None  # WeChat JSAPI needs the buyer's openid for this appid
    expires_at: dt.datetime  # the last moment the buyer can pay (timezone-aware)
    notify_url: str

    def __post_init__(self) -> None:
        _check_number("out_trade_no", self.out_trade_no)
        _check_amount("amount", self.amount)
        if not 1 <= len(self.description) <= MAX_DESCRIPTION:
            raise InvalidPaymentRequest(
                f"description must be 1 to {MAX_DESCRIPTION} characters", field="description"
            )
        if self.expires_at.tzinfo is None:
            raise InvalidPaymentRequest("expires_at must carry a time zone", field="expires_at")


@dataclass(frozen=True)
class RefundRequest:
    out_trade_no: str
    out_refund_no: str  # one per refund: several partial refunds of a payment differ here
    amount: int  # fen refunded now
    total: int  # fen the payment was for
    reason: str
    notify_url: str

    def __post_init__(self) -> None:
        _check_number("out_trade_no", self.out_trade_no)
        _check_number("out_refund_no", self.out_refund_no)
        _check_amount("total", self.total)
        _check_amount("amount", self.amount)
        if self.amount > self.total:
            raise InvalidPaymentRequest("a refund cannot exceed the payment", field="amount")
        if len(self.reason) > MAX_REASON:
            raise InvalidPaymentRequest(
                f"reason must be at most {MAX_REASON} characters", field="reason"
            )


@dataclass(frozen=True)
class RefundResult:
    """`processing`: the result comes by notice; `succeeded`: done already (a notice still
    follows); `abnormal`: the money could not reach the buyer, ops must act; `closed`: failed."""

    status: RefundStatus
    refund_id: str


@dataclass(frozen=True)
class PaymentEvent:
    """A verified callback, in the provider's terms mapped to ours.

    `transaction_id` is the provider's id of this movement of money: the payment's transaction
    id, or the refund's id for refund events (a payment can be refunded in several parts).
    `amount` is the order total for a payment and the refunded amount for a refund;
    `payer_total` what the buyer's own money covered (less than `amount` with coupons).
    """

    provider: str
    event_type: EventType
    transaction_id: str
    out_trade_no: str
    out_refund_no: str | None
    amount: int  # fen
    payer_total: int  # fen
    paid_at: dt.datetime | None  # when the money moved, if it did
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # What the notice table can hold; a provider sending more is not one we understand.
        if not 1 <= len(self.transaction_id) <= MAX_PROVIDER_ID:
            raise MalformedNotice("the notice's transaction id is missing or too long")
        if len(self.out_trade_no) > MAX_PROVIDER_ID or self.amount < 0 or self.payer_total < 0:
            raise MalformedNotice("the notice's order number or amounts are out of range")


@dataclass(frozen=True)
class NotifyAnswer:
    """What the notify endpoint answers, in the form the provider expects."""

    status: int
    body: bytes = b""
    content_type: str | None = None


class PaymentProvider(Protocol):
    @property
    def name(self) -> str: ...

    async def prepay(self, request: PrepayRequest) -> dict[str, str]:
        """The parameters the client passes to its payment call (wx.requestPayment)."""
        ...

    async def refund(self, request: RefundRequest) -> RefundResult: ...

    async def parse_notify(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        """Verify a callback and read it; `BadSignature` or `MalformedNotice` otherwise."""
        ...

    def accepted(self) -> NotifyAnswer:
        """The answer that tells the provider the notice arrived and needs no retry."""
        ...

    def refused(self, status: int, code: str, message: str) -> NotifyAnswer:
        """The answer that tells the provider the notice failed (it retries later)."""
        ...


Outcome = Literal["applied", "already_applied", "refused"]


@dataclass(frozen=True)
class Applied:
    """The sink's answer. `refused` is final (e.g. `amount_mismatch`, `unknown_order`): the
    notice is recorded as refused and the provider is told to stop retrying. A failure that
    may pass (a backend down) is raised instead, and the provider retries."""

    outcome: Outcome
    code: str = ""
    message: str = ""
    order_id: int | None = None

    @classmethod
    def done(cls, order_id: int | None = None) -> Applied:
        return cls("applied", order_id=order_id)

    @classmethod
    def already(cls, order_id: int | None = None) -> Applied:
        return cls("already_applied", order_id=order_id)

    @classmethod
    def refuse(cls, code: str, message: str, order_id: int | None = None) -> Applied:
        return cls("refused", code, message, order_id)


class PaymentSink(Protocol):
    """The order side: applies a verified event once, however often it is delivered."""

    async def apply(self, event: PaymentEvent) -> Applied: ...


class NoOrders:
    """The sink until the order side sets its own: every event is for an unknown order."""

    async def apply(self, event: PaymentEvent) -> Applied:
        return Applied.refuse("unknown_order", f"no order {event.out_trade_no} here")


REPLAY_WINDOW: Final = 300  # seconds a signed callback's timestamp may be off from our clock


def fresh_timestamp(value: str | None, now: float) -> str:
    """The callback's timestamp header, if it is within the replay window of `now`."""
    if value is None or not value.isdigit():
        raise BadSignature("the notice carries no valid timestamp", reason="missing_timestamp")
    if abs(now - int(value)) > REPLAY_WINDOW:
        raise BadSignature(
            "the notice's timestamp is outside the replay window", reason="stale_timestamp"
        )
    return value
