"""The order side of payments: verified provider events become order commands, and refunds
the order actor decides on go to the provider the order was paid with."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import aiohttp

from actors.runtime import Runtime
from config.settings import Settings
from deer import cache
from deer.errors import DeerError
from deer.payments.provider import Applied, PaymentEvent, RefundRequest
from deer.payments.registry import Payments, build_payments
from deer.shop import orders
from deer.shop.order_actor import RefundOrder, RefundOutcome

log = logging.getLogger(__name__)


class OrderPayments:
    """The `PaymentSink`: applies a payment or refund event to its order, once.

    A replay reaches the order actor again and comes back `applied: False` (already
    applied); an order that cannot take the event (amount, state) refuses it for good.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def apply(self, event: PaymentEvent) -> Applied:
        order = await orders.find_by_sn(event.out_trade_no)
        if order is None:
            return Applied.refuse("unknown_order", f"no order {event.out_trade_no}")
        order_id = int(order["id"])
        if event.event_type == "refund.abnormal":
            log.warning("order %s: refund %s is abnormal", order["sn"], event.out_refund_no)
            return Applied.refuse(
                "refund_abnormal",
                "the provider could not pay the refund back; ops must act in its console",
                order_id,
            )
        try:
            if event.event_type == "payment.succeeded":
                paid_at = event.paid_at or dt.datetime.now(dt.UTC)
                reply = await orders.ask(
                    self.runtime,
                    order_id,
                    "paid",
                    provider=event.provider,
                    transaction_id=event.transaction_id,
                    amount=event.amount,
                    paid_at=paid_at.isoformat(),
                )
            else:
                reply = await orders.ask(
                    self.runtime,
                    order_id,
                    "refund_result",
                    no=event.out_refund_no,
                    status="succeeded" if event.event_type == "refund.succeeded" else "failed",
                )
        except DeerError as refused:
            if refused.kind == "timeout":
                raise  # not an answer: the provider retries, the command is applied once
            log.warning(
                "order %s: %s refused: %s %s",
                order["sn"],
                event.event_type,
                refused.code,
                refused.message,
            )
            return Applied.refuse(refused.code, refused.message, order_id)
        return Applied.done(order_id) if reply["applied"] else Applied.already(order_id)


class ProviderRefunds:
    """The order actor's `RefundGateway` over the enabled payment providers."""

    def __init__(self, payments: Callable[[], Payments]) -> None:
        self.payments = payments

    async def submit(self, refund: RefundOrder) -> RefundOutcome:
        payments = self.payments()
        result = await payments.provider(refund.provider).refund(
            RefundRequest(
                out_trade_no=refund.out_trade_no,
                out_refund_no=refund.out_refund_no,
                amount=refund.amount,
                total=refund.total,
                reason=refund.reason[:80],
                notify_url=payments.notify_url(refund.provider),
            )
        )
        if result.status == "succeeded":
            return "succeeded"
        if result.status == "closed":
            return "failed"
        return "processing"  # the result comes by notice (abnormal: ops act, then it does)


class StandaloneRefunds:
    """The gateway of a process without the app's resources (`run.py worker`): it opens the
    providers for each refund. Refunds are rare; a worker keeps no HTTP session idle."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def submit(self, refund: RefundOrder) -> RefundOutcome:
        async with (
            cache.redis_client(self.settings) as redis,
            aiohttp.ClientSession() as http,
        ):
            payments = build_payments(self.settings, redis, http)
            return await ProviderRefunds(lambda: payments).submit(refund)
