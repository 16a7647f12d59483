"""A provider's callback, from bytes to the order side: verified, recorded once, applied.

1. The provider verifies and reads it (`parse_notify`); a forged, tampered, stale or
   undecryptable one stops here with `BadSignature` and leaves no row.
2. It is recorded in `payment_notice` once per (provider, transaction id, event type):
   `INSERT ... ON CONFLICT DO NOTHING`, payload kept.
3. The sink is called every time, replays included: providers retry until they hear an
   acknowledgement, and only the sink knows whether the event took effect (it is idempotent).
4. The row's status follows what the sink said, never going back: `applied` beats
   `duplicate` beats `refused` beats `failed`/`received`, so concurrent deliveries of one
   notice leave it `applied` whatever order they finish in.

A sink that raises leaves the row `failed` and the error goes back to the provider, which
retries; a sink that refuses (`amount_mismatch`, `unknown_order`) is final: recorded, logged,
and acknowledged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import orjson
from tortoise.connection import get_connection

from deer.errors import DeerError
from deer.payments.provider import Applied, PaymentEvent, PaymentProvider, PaymentSink

log = logging.getLogger(__name__)

Status = Literal["received", "failed", "refused", "duplicate", "applied"]
Delivery = Literal["applied", "duplicate", "refused"]
RANK: Final[dict[Status, int]] = {
    "received": 0,
    "failed": 0,
    "refused": 1,
    "duplicate": 2,
    "applied": 3,
}
STATUS_OF: Final[dict[str, Delivery]] = {
    "applied": "applied",
    "already_applied": "duplicate",
    "refused": "refused",
}
MAX_ERROR: Final = 256  # payment_notice.error

RECORD: Final = (
    "INSERT INTO payment_notice (provider, transaction_id, event_type, out_trade_no, amount,"
    " status, error, payload, created_at, updated_at)"
    " VALUES ($1, $2, $3, $4, $5, 'received', '', $6::jsonb, now(), now())"
    " ON CONFLICT (provider, transaction_id, event_type) DO NOTHING RETURNING id"
)
FIND: Final = (
    "SELECT id FROM payment_notice WHERE provider = $1 AND transaction_id = $2 AND event_type = $3"
)
SETTLE: Final = (
    "UPDATE payment_notice SET status = $2, error = $3, order_id = COALESCE($4, order_id),"
    " updated_at = now() WHERE id = $1 AND status = ANY($5::text[])"
)


@dataclass(frozen=True)
class Receipt:
    """What came of one delivery: `applied` the first time the sink applied it, `duplicate`
    when it had already taken effect (a replay), `refused` when the sink refused it."""

    notice_id: int
    status: Delivery
    replay: bool  # the notice was recorded before
    event: PaymentEvent
    applied: Applied


async def receive(
    provider: PaymentProvider, sink: PaymentSink, headers: Mapping[str, str], body: bytes
) -> Receipt:
    try:
        event = await provider.parse_notify(headers, body)
    except DeerError as exc:
        log.warning(
            "refused a %s payment notice: %s (%s)",
            provider.name,
            exc.code,
            exc.details.get("reason", exc.message),
        )
        raise
    notice_id, replay = await record(event)
    try:
        applied = await sink.apply(event)
    except Exception as exc:
        await settle(notice_id, "failed", _error(type(exc).__name__, str(exc)), None)
        raise
    status = STATUS_OF[applied.outcome]
    await settle(notice_id, status, _error(applied.code, applied.message), applied.order_id)
    if status == "refused":
        log.warning(
            "the %s %s of order %s (%s, %d fen) was refused: %s %s",
            event.provider,
            event.event_type,
            event.out_trade_no,
            event.transaction_id,
            event.amount,
            applied.code,
            applied.message,
        )
    return Receipt(notice_id, status, replay, event, applied)


async def record(event: PaymentEvent) -> tuple[int, bool]:
    """The notice's row id, and whether it was there already."""
    connection = get_connection("default")
    key = [event.provider, event.transaction_id, event.event_type]
    payload = orjson.dumps(event.raw, default=str).decode()
    rows = await connection.execute_query_dict(
        RECORD, [*key, event.out_trade_no, event.amount, payload]
    )
    if rows:
        return int(rows[0]["id"]), False
    # A new statement: its snapshot sees the row of a concurrent insert that won.
    rows = await connection.execute_query_dict(FIND, key)
    return int(rows[0]["id"]), True


async def settle(notice_id: int, status: Status, error: str, order_id: int | None) -> None:
    """Move the row to `status` unless it already holds a higher one."""
    below = [name for name, rank in RANK.items() if rank <= RANK[status]]
    await get_connection("default").execute_query(
        SETTLE, [notice_id, status, error, order_id, below]
    )


def _error(code: str, message: str) -> str:
    return f"{code}: {message}"[:MAX_ERROR] if code else ""
