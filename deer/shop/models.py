"""Tables of the shop beside the actors' state: an order's state lives in `actor_state`
(kind `order`, key = order id); these hold what must be found before an actor is asked."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from deer.accounts.models import Member


class OrderRequest(Model):
    """One `POST /api/orders` by idempotency key: its id is the order's id, so the same key
    always reaches the same order actor; `body_hash` tells a replay from a different body."""

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "deer.Member", related_name="order_requests", on_delete=fields.CASCADE
    )
    idempotency_key = fields.CharField(max_length=128)
    body_hash = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "order_request"
        unique_together = (("member", "idempotency_key"),)


class PaymentNotice(Model):
    """A payment provider's callback, recorded once per (provider, transaction, event type):
    `status` says what came of it (applied, refused with `error`, or ignored)."""

    id = fields.BigIntField(primary_key=True)
    provider = fields.CharField(max_length=16)
    transaction_id = fields.CharField(max_length=64)
    event_type = fields.CharField(max_length=32)  # payment.succeeded, refund.succeeded, ...
    out_trade_no = fields.CharField(max_length=64, default="")
    order_id = fields.BigIntField(null=True, db_index=True)
    amount = fields.BigIntField(default=0)  # fen
    status = fields.CharField(max_length=16, default="received")
    error = fields.CharField(max_length=256, default="")
    payload: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "payment_notice"
        unique_together = (("provider", "transaction_id", "event_type"),)
