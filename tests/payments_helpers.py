"""For payment tests: a sink standing in for the order side, requests, the app with WeChat Pay
pointed at the fake (`pay_client`), and the payment notice rows.

Fixtures come with an import of `pay_client_fixture` and `sink_fixture` (`# noqa: F401`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from deer import keys
from deer.app import create_app
from deer.errors import Unavailable
from deer.payments.provider import Applied, PaymentEvent, PrepayRequest, RefundRequest
from deer.payments.wechatpay import WechatPay
from deer.shop.models import PaymentNotice
from tests.fakes.wechatpay import FakeWechatPay

ORDER_ID = 7001


class RecordingSink:
    """Applies each (provider, transaction, event type) once, as the order side will.

    `orders` (out_trade_no -> payable fen), when given, makes it refuse unknown orders and
    payments of another amount; `fail_next` makes the next calls raise (a backend down).
    """

    def __init__(self, orders: dict[str, int] | None = None) -> None:
        self.orders = orders
        self.events: list[PaymentEvent] = []
        self.answers: list[Applied] = []
        self.fail_next = 0
        self._applied: set[tuple[str, str, str]] = set()

    async def apply(self, event: PaymentEvent) -> Applied:
        self.events.append(event)
        await asyncio.sleep(0)  # let concurrent deliveries interleave here
        if self.fail_next:
            self.fail_next -= 1
            raise Unavailable("the orders are unavailable")
        answer = self._decide(event)
        self.answers.append(answer)
        return answer

    def _decide(self, event: PaymentEvent) -> Applied:
        if self.orders is not None:
            payable = self.orders.get(event.out_trade_no)
            if payable is None:
                return Applied.refuse("unknown_order", f"no order {event.out_trade_no}")
            if event.event_type == "payment.succeeded" and event.amount != payable:
                return Applied.refuse(
                    "amount_mismatch", f"paid {event.amount}, payable {payable}", ORDER_ID
                )
        key = (event.provider, event.transaction_id, event.event_type)
        if key in self._applied:
            return Applied.already(ORDER_ID)
        self._applied.add(key)
        return Applied.done(ORDER_ID)

    @property
    def outcomes(self) -> list[str]:
        return [answer.outcome for answer in self.answers]


async def notices() -> list[dict[str, Any]]:
    """Every payment notice row, oldest first."""
    return (
        await PaymentNotice.all()
        .order_by("id")
        .values(
            "provider",
            "transaction_id",
            "event_type",
            "out_trade_no",
            "order_id",
            "amount",
            "status",
            "error",
            "payload",
        )
    )


def prepay_request(out_trade_no: str = "D2611200001", amount: int = 12_800, **changes: Any) -> Any:
    values: dict[str, Any] = {
        "out_trade_no": out_trade_no,
        "amount": amount,
        "description": "鹿角小铺-蓝牙耳机 x1",
        "payer_openid": "o-buyer",
        "expires_at": dt.datetime(2030, 5, 20, 5, 29, 35, tzinfo=dt.UTC),
        "notify_url": "https://shop.example.com/api/payments/wechatpay/notify",
    }
    return PrepayRequest(**(values | changes))


def refund_request(
    out_trade_no: str = "D2611200001", out_refund_no: str = "R2611200001", amount: int = 2_800
) -> RefundRequest:
    return RefundRequest(
        out_trade_no=out_trade_no,
        out_refund_no=out_refund_no,
        amount=amount,
        total=12_800,
        reason="七天无理由退货",
        notify_url="https://shop.example.com/api/payments/wechatpay/notify",
    )


@pytest.fixture(name="sink")
def sink_fixture() -> RecordingSink:
    return RecordingSink()


@pytest.fixture(name="pay_client")
async def pay_client_fixture(
    aiohttp_client: Any, settings: Settings, wechatpay: FakeWechatPay, sink: RecordingSink
) -> TestClient[Any, Any]:
    """The real app with both providers, WeChat Pay pointed at the fake, the test's sink."""
    app = create_app(settings.with_values(**wechatpay.settings()))
    app[keys.PAYMENT_SINK] = sink
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


def wechatpay_of(client: TestClient[Any, Any]) -> WechatPay:
    provider = client.app[keys.PAYMENTS].provider("wechatpay")
    assert isinstance(provider, WechatPay)
    return provider
