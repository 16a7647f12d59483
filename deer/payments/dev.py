"""The `dev` payment provider: no money moves, but the callbacks travel the real path.

A callback is JSON signed with HMAC-SHA256 (`DEER_DEV_PAYMENT_SECRET`, or a secret generated
into the data folder) over `timestamp\\nnonce\\nbody\\n`, with the timestamp, nonce and
signature in headers, and refused outside a five-minute window, like WeChat Pay's. Prepay
and refund remember their numbers in Redis, so they are idempotent as WeChat Pay's are: the
same number with the same amount gives the same answer, with another amount a conflict.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from redis.asyncio import Redis

from config.settings import Settings
from deer import cache
from deer.payments.errors import BadSignature, MalformedNotice, PaymentNumberReused
from deer.payments.provider import (
    MAX_AMOUNT,
    MAX_PROVIDER_ID,
    EventType,
    NotifyAnswer,
    PaymentEvent,
    PrepayRequest,
    RefundRequest,
    RefundResult,
    fresh_timestamp,
    header,
)

TIMESTAMP_HEADER: Final = "Deer-Pay-Timestamp"
NONCE_HEADER: Final = "Deer-Pay-Nonce"
SIGNATURE_HEADER: Final = "Deer-Pay-Signature"
RECORD_TTL: Final = 30 * 24 * 3600  # seconds a prepay or refund number is remembered
JSON: Final = "application/json"

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PROVIDER_ID)]


class DevNotice(BaseModel):
    """The body of a dev callback."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: EventType
    transaction_id: Id
    out_trade_no: Id
    out_refund_no: Id | None = None
    amount: int = Field(ge=1, le=MAX_AMOUNT)
    payer_total: int = Field(ge=0, le=MAX_AMOUNT)
    paid_at: dt.datetime | None = None


def sign(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = b"%s\n%s\n%s\n" % (timestamp.encode(), nonce.encode(), body)
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class DevPay:
    """The provider object; `simulated_notice` builds a callback as the dev "bank" would."""

    name: Final = "dev"

    def __init__(
        self,
        settings: Settings,
        secret: str,
        redis: Redis,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._secret = secret
        self._redis = redis
        self._clock = clock

    async def prepay(self, request: PrepayRequest) -> dict[str, str]:
        await self._remember("prepay", request.out_trade_no, {"amount": request.amount})
        prepay_id = "dev" + self._digest("prepay", request.out_trade_no)[:29]
        return {
            "provider": self.name,
            "prepay_id": prepay_id,
            "out_trade_no": request.out_trade_no,
            "amount": str(request.amount),
            "expires_at": request.expires_at.astimezone(dt.UTC).isoformat(),
            "simulate": "/api/payments/dev/simulate",
        }

    async def refund(self, request: RefundRequest) -> RefundResult:
        wanted = {"out_trade_no": request.out_trade_no, "amount": request.amount}
        await self._remember("refund", request.out_refund_no, wanted)
        # The result arrives as a notice: POST /api/payments/dev/simulate sends it.
        return RefundResult("processing", refund_id(request.out_refund_no))

    async def parse_notify(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        timestamp = fresh_timestamp(header(headers, TIMESTAMP_HEADER), self._clock())
        nonce = header(headers, NONCE_HEADER) or ""
        signature = header(headers, SIGNATURE_HEADER) or ""
        if not nonce or not hmac.compare_digest(
            signature.encode(), sign(self._secret, timestamp, nonce, body).encode()
        ):
            raise BadSignature(reason="signature_mismatch")
        try:
            notice = DevNotice.model_validate_json(body)
        except ValidationError:
            raise MalformedNotice("the body is not a dev payment notice") from None
        return PaymentEvent(
            provider=self.name,
            raw=notice.model_dump(mode="json"),
            **notice.model_dump(),
        )

    def accepted(self) -> NotifyAnswer:
        return NotifyAnswer(204)

    def refused(self, status: int, code: str, message: str) -> NotifyAnswer:
        error = {"error": {"code": code, "message": message, "details": {}}}
        return NotifyAnswer(status, orjson.dumps(error), JSON)

    def signed(self, notice: DevNotice) -> tuple[dict[str, str], bytes]:
        """Headers and body of a correctly signed callback carrying `notice`."""
        body = notice.model_dump_json(exclude_none=True).encode()
        timestamp, nonce = str(int(self._clock())), secrets.token_hex(16)
        return {
            "Content-Type": JSON,
            TIMESTAMP_HEADER: timestamp,
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: sign(self._secret, timestamp, nonce, body),
        }, body

    def simulated_notice(
        self,
        kind: Literal["payment", "refund"],
        out_trade_no: str,
        amount: int,
        out_refund_no: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """The callback the dev "bank" sends when a payment or a refund succeeds. The
        transaction id follows from the merchant number, so sending it twice is a replay."""
        if kind == "payment":
            event_type: EventType = "payment.succeeded"
            transaction_id = "devpay" + self._digest("payment", out_trade_no)[:26]
        else:
            assert out_refund_no is not None, "a refund notice names its out_refund_no"
            event_type, transaction_id = "refund.succeeded", refund_id(out_refund_no)
        notice = DevNotice(
            event_type=event_type,
            transaction_id=transaction_id,
            out_trade_no=out_trade_no,
            out_refund_no=out_refund_no if kind == "refund" else None,
            amount=amount,
            payer_total=amount,
            paid_at=dt.datetime.fromtimestamp(int(self._clock()), dt.UTC),
        )
        return self.signed(notice)

    async def _remember(self, what: str, number: str, wanted: dict[str, Any]) -> None:
        """The first request with a number fixes its parameters; a later one must match."""
        key = cache.key(self._settings, "payments", "dev", what, number)
        value = orjson.dumps(wanted)
        first = await self._redis.set(key, value, nx=True, ex=RECORD_TTL)
        if not first and await self._redis.get(key) != value:
            raise PaymentNumberReused(number=number)

    def _digest(self, *parts: str) -> str:
        message = "\n".join(parts).encode()
        return hmac.new(self._secret.encode(), message, hashlib.sha256).hexdigest()


def refund_id(out_refund_no: str) -> str:
    return f"devrefund-{out_refund_no}"
