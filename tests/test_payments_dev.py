"""The dev provider: HMAC-signed callbacks on the real notify path, the simulator endpoint
(development only), and prepay and refund as idempotent as WeChat Pay's."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings, dev_payment_secret
from deer import keys
from deer.app import create_app
from deer.payments.dev import DevNotice, DevPay, sign
from deer.payments.errors import PaymentNumberReused
from deer.payments.provider import PaymentEvent, RefundResult
from tests.payments_helpers import ORDER_ID, RecordingSink, notices, prepay_request, refund_request

NOTIFY = "/api/payments/dev/notify"
SIMULATE = "/api/payments/dev/simulate"


@pytest.fixture
async def dev_client(
    aiohttp_client: Any, settings: Settings
) -> tuple[TestClient[Any, Any], RecordingSink]:
    app = create_app(settings)
    sink = RecordingSink()
    app[keys.PAYMENT_SINK] = sink
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client, sink


def dev_of(client: TestClient[Any, Any]) -> DevPay:
    dev = client.app[keys.PAYMENTS].dev
    assert dev is not None
    return dev


NOTICE = DevNotice(
    event_type="payment.succeeded",
    transaction_id="T-1",
    out_trade_no="D2611200001",
    amount=12_800,
    payer_total=12_800,
    paid_at=dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.UTC),
)


async def test_a_signed_callback_is_applied(
    dev_client: tuple[TestClient[Any, Any], RecordingSink],
) -> None:
    client, sink = dev_client
    headers, body = dev_of(client).signed(NOTICE)

    response = await client.post(NOTIFY, data=body, headers=headers)

    assert response.status == 204
    assert sink.events == [
        PaymentEvent(
            provider="dev",
            event_type="payment.succeeded",
            transaction_id="T-1",
            out_trade_no="D2611200001",
            out_refund_no=None,
            amount=12_800,
            payer_total=12_800,
            paid_at=dt.datetime(2026, 11, 20, 5, 0, tzinfo=dt.UTC),
        )
    ]
    [row] = await notices()
    assert (row["provider"], row["transaction_id"], row["status"]) == ("dev", "T-1", "applied")
    assert row["payload"]["amount"] == 12_800


def _resigned(headers: dict[str, str], body: bytes, secret: str) -> dict[str, str]:
    timestamp, nonce = headers["Deer-Pay-Timestamp"], headers["Deer-Pay-Nonce"]
    return headers | {"Deer-Pay-Signature": sign(secret, timestamp, nonce, body)}


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda h, b: (_resigned(h, b, "not-the-secret"), b), "signature_mismatch"),
        (lambda h, b: (h, b.replace(b"12800", b"12801")), "signature_mismatch"),
        (lambda h, b: (h | {"Deer-Pay-Nonce": "other"}, b), "signature_mismatch"),
        (lambda h, b: ({k: v for k, v in h.items() if "Signature" not in k}, b), ""),
        (lambda h, b: ({k: v for k, v in h.items() if "Timestamp" not in k}, b), ""),
        (lambda h, b: (h | {"Deer-Pay-Timestamp": str(int(time.time()) - 301)}, b), ""),
    ],
    ids=["wrong-secret", "tampered", "other-nonce", "unsigned", "no-timestamp", "stale"],
)
async def test_a_bad_dev_callback_is_refused_and_nothing_recorded(
    dev_client: tuple[TestClient[Any, Any], RecordingSink], spoil: Any, reason: str
) -> None:
    client, sink = dev_client
    headers, body = spoil(*dev_of(client).signed(NOTICE))

    response = await client.post(NOTIFY, data=body, headers=headers)

    assert response.status == 401
    error = (await response.json())["error"]
    assert error["code"] == "bad_signature"
    assert sink.events == []
    assert await notices() == []


async def test_a_stale_but_correctly_signed_callback_is_refused(
    dev_client: tuple[TestClient[Any, Any], RecordingSink],
) -> None:
    client, sink = dev_client
    settings = client.app[keys.SETTINGS]
    stale = DevPay(settings, dev_payment_secret(settings), client.app[keys.REDIS], lambda: 1e9)
    headers, body = stale.signed(NOTICE)
    response = await client.post(NOTIFY, data=body, headers=headers)
    assert response.status == 401
    assert sink.events == []


async def test_a_signed_callback_with_an_unknown_shape_is_refused(
    dev_client: tuple[TestClient[Any, Any], RecordingSink],
) -> None:
    client, sink = dev_client
    body = b'{"event_type": "payment.refunded", "transaction_id": "T-1"}'
    timestamp, nonce = str(int(time.time())), "n-1"
    secret = dev_payment_secret(client.app[keys.SETTINGS])
    headers = {
        "Deer-Pay-Timestamp": timestamp,
        "Deer-Pay-Nonce": nonce,
        "Deer-Pay-Signature": sign(secret, timestamp, nonce, body),
    }
    response = await client.post(NOTIFY, data=body, headers=headers)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "malformed_notice"
    assert sink.events == []


async def test_simulate_a_payment_then_its_replay(
    dev_client: tuple[TestClient[Any, Any], RecordingSink],
) -> None:
    client, sink = dev_client
    body = {"out_trade_no": "D2611200001", "amount": 12_800}

    first = await client.post(SIMULATE, json=body)
    again = await client.post(SIMULATE, json=body)

    assert first.status == again.status == 200
    first_receipt, again_receipt = await first.json(), await again.json()
    assert first_receipt["status"] == "applied"
    assert again_receipt == first_receipt | {"status": "duplicate"}
    assert first_receipt["event_type"] == "payment.succeeded"
    assert first_receipt["transaction_id"].startswith("devpay")
    assert [e.out_trade_no for e in sink.events] == ["D2611200001"] * 2
    [row] = await notices()
    assert (row["status"], row["order_id"], row["amount"]) == ("applied", ORDER_ID, 12_800)


async def test_simulate_a_refund(dev_client: tuple[TestClient[Any, Any], RecordingSink]) -> None:
    client, sink = dev_client
    result = await dev_of(client).refund(refund_request())
    response = await client.post(
        SIMULATE,
        json={
            "out_trade_no": "D2611200001",
            "amount": 2_800,
            "event": "refund",
            "out_refund_no": "R2611200001",
        },
    )
    assert response.status == 200
    receipt = await response.json()
    assert (receipt["event_type"], receipt["transaction_id"]) == (
        "refund.succeeded",
        result.refund_id,
    )
    [event] = sink.events
    assert (event.out_refund_no, event.amount) == ("R2611200001", 2_800)


async def test_the_simulator_reports_the_sinks_refusal(
    aiohttp_client: Any, settings: Settings
) -> None:
    client = await aiohttp_client(create_app(settings))  # the default sink: no orders yet
    response = await client.post(SIMULATE, json={"out_trade_no": "D2611200001", "amount": 1})
    assert response.status == 200
    receipt = await response.json()
    assert (receipt["status"], receipt["code"]) == ("refused", "unknown_order")


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"out_trade_no": "D26", "amount": 1},
        {"out_trade_no": "D2611200001", "amount": 0},
        {"out_trade_no": "D2611200001", "amount": 1, "event": "refund"},
        {"out_trade_no": "D2611200001", "amount": 1, "event": "chargeback"},
        {"out_trade_no": "D2611200001", "amount": 1, "paid": True},
    ],
)
async def test_a_bad_simulation_is_refused_and_sends_nothing(
    dev_client: tuple[TestClient[Any, Any], RecordingSink], body: dict[str, Any]
) -> None:
    client, sink = dev_client
    response = await client.post(SIMULATE, json=body)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "validation_error"
    assert sink.events == []
    assert await notices() == []


@pytest.mark.parametrize(
    "changes",
    [{"env": "production"}, {"payment_providers": ()}],
    ids=["production", "dev-disabled"],
)
async def test_no_dev_provider_outside_development(
    aiohttp_client: Any, settings: Settings, changes: dict[str, Any]
) -> None:
    client = await aiohttp_client(create_app(settings.with_values(**changes)))
    simulate = await client.post(SIMULATE, json={"out_trade_no": "D2611200001", "amount": 1})
    assert simulate.status == 404
    headers, body = DevPay(client.app[keys.SETTINGS], "s", client.app[keys.REDIS]).signed(NOTICE)
    notify = await client.post(NOTIFY, data=body, headers=headers)
    assert notify.status == 404
    assert client.app[keys.PAYMENTS].names == ()
    assert await notices() == []


async def test_dev_prepay_and_refund_are_idempotent(
    dev_client: tuple[TestClient[Any, Any], RecordingSink],
) -> None:
    client, _ = dev_client
    dev = dev_of(client)
    first, again = await asyncio.gather(dev.prepay(prepay_request()), dev.prepay(prepay_request()))
    assert first == again
    assert first["prepay_id"].startswith("dev") and first["amount"] == "12800"
    with pytest.raises(PaymentNumberReused):
        await dev.prepay(prepay_request(amount=100))

    refunds = await asyncio.gather(*(dev.refund(refund_request()) for _ in range(5)))
    assert set(refunds) == {RefundResult("processing", "devrefund-R2611200001")}
    with pytest.raises(PaymentNumberReused):
        await dev.refund(refund_request(amount=100))
