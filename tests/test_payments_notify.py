"""WeChat Pay's notices through `POST /api/payments/wechatpay/notify`: verified, decrypted,
recorded once, handed to the sink every time, and answered as WeChat Pay expects."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from deer import keys
from deer.app import create_app
from deer.payments import notices as notices_module
from deer.payments.provider import PaymentEvent
from deer.shop.models import PaymentNotice
from tests.fakes.wechatpay import FakeWechatPay, rsa_key, tampered, wechatpay_fixture  # noqa: F401
from tests.payments_helpers import (
    ORDER_ID,
    RecordingSink,
    notices,
    pay_client_fixture,  # noqa: F401
    prepay_request,
    refund_request,
    sink_fixture,  # noqa: F401
    wechatpay_of,
)

NOTIFY = "/api/payments/wechatpay/notify"


async def post(client: TestClient[Any, Any], notice: tuple[dict[str, str], bytes]) -> Any:
    headers, body = notice
    return await client.post(NOTIFY, data=body, headers=headers)


async def prepaid(client: TestClient[Any, Any], number: str = "D2611200001") -> None:
    await wechatpay_of(client).prepay(prepay_request(number))


async def test_a_payment_notice_is_verified_decrypted_and_applied(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    await prepaid(pay_client)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)

    response = await post(pay_client, wechatpay.paid("D2611200001", payer_total=12_000))

    assert response.status == 204
    assert await response.read() == b""
    [event] = sink.events
    transaction_id = wechatpay.orders["D2611200001"].transaction_id
    assert event == PaymentEvent(
        provider="wechatpay",
        event_type="payment.succeeded",
        transaction_id=transaction_id,
        out_trade_no="D2611200001",
        out_refund_no=None,
        amount=12_800,
        payer_total=12_000,
        paid_at=event.paid_at,
    )
    assert event.paid_at is not None and event.paid_at.tzinfo == dt.UTC
    assert before <= event.paid_at <= dt.datetime.now(dt.UTC)
    assert event.raw["resource"]["payer"] == {"openid": "o-buyer"}
    [row] = await notices()
    assert row | {"payload": None} == {
        "provider": "wechatpay",
        "transaction_id": transaction_id,
        "event_type": "payment.succeeded",
        "out_trade_no": "D2611200001",
        "order_id": ORDER_ID,
        "amount": 12_800,
        "status": "applied",
        "error": "",
        "payload": None,
    }
    assert row["payload"]["event_type"] == "TRANSACTION.SUCCESS"
    assert row["payload"]["resource"]["transaction_id"] == transaction_id


async def test_fifty_deliveries_reach_the_sink_and_leave_one_notice(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    await prepaid(pay_client)
    notice = wechatpay.paid("D2611200001")

    first = await asyncio.gather(*(post(pay_client, notice) for _ in range(10)))
    one_by_one = [await post(pay_client, notice) for _ in range(20)]
    together = await asyncio.gather(*(post(pay_client, notice) for _ in range(20)))

    assert [r.status for r in [*first, *one_by_one, *together]] == [204] * 50
    assert len(sink.events) == 50
    assert sorted(sink.outcomes) == ["already_applied"] * 49 + ["applied"]
    [row] = await notices()
    assert row["status"] == "applied"  # concurrent replays finishing last do not demote it

    # Each later delivery is a replay the sink had already applied: `duplicate`.
    provider = wechatpay_of(pay_client)
    receipt = await notices_module.receive(provider, sink, *notice)
    assert (receipt.status, receipt.replay) == ("duplicate", True)
    assert [r["status"] for r in await notices()] == ["applied"]


async def forged(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    return wechatpay.paid("D2611200001", key=rsa_key("intruder"))


async def tampered_notice(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    headers, body = wechatpay.paid("D2611200001")
    return headers, tampered(body)


async def wrong_api_v3_key(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    return wechatpay.paid("D2611200001", api_v3_key="0123456789abcdef0123456789abcdef")


async def unknown_serial(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    return wechatpay.paid("D2611200001", serial="5157F09EFDC096DE15EBE81A47057A7232F1B8E1")


async def stale(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    return wechatpay.paid("D2611200001", timestamp=int(time.time()) - 301)


async def from_the_future(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    return wechatpay.paid("D2611200001", timestamp=int(time.time()) + 301)


async def unsigned(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    headers, body = wechatpay.paid("D2611200001")
    del headers["Wechatpay-Signature"]
    return headers, body


async def signature_probe(wechatpay: FakeWechatPay) -> tuple[dict[str, str], bytes]:
    """WeChat Pay's own check that merchants verify: a signature that cannot verify."""
    headers, body = wechatpay.paid("D2611200001")
    headers["Wechatpay-Signature"] = "WECHATPAY/SIGNTEST/" + headers["Wechatpay-Signature"]
    return headers, body


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (forged, "signature_mismatch"),
        (tampered_notice, "signature_mismatch"),
        (wrong_api_v3_key, "undecryptable"),
        (unknown_serial, "unknown_serial"),
        (stale, "stale_timestamp"),
        (from_the_future, "stale_timestamp"),
        (unsigned, "missing_signature"),
        (signature_probe, "signature_mismatch"),
    ],
)
async def test_an_inauthentic_notice_is_refused_and_nothing_is_recorded(
    pay_client: TestClient[Any, Any],
    wechatpay: FakeWechatPay,
    sink: RecordingSink,
    caplog: pytest.LogCaptureFixture,
    make: Any,
    reason: str,
) -> None:
    await prepaid(pay_client)
    with caplog.at_level(logging.WARNING, "deer.payments.notices"):
        response = await post(pay_client, await make(wechatpay))

    assert response.status == 401
    answer = await response.json()
    assert answer["code"] == "FAIL"
    assert answer["message"].startswith("bad_signature: ")
    assert sink.events == []
    assert await notices() == []
    [line] = [r for r in caplog.records if r.name == "deer.payments.notices"]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == f"refused a wechatpay payment notice: bad_signature ({reason})"


async def test_a_signed_notice_that_is_not_one_is_a_client_error(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    body = b'{"id": "EV-1", "event_type": "TRANSACTION.SUCCESS"}'
    headers = {"Content-Type": "application/json", **wechatpay.signature_headers(body)}
    response = await pay_client.post(NOTIFY, data=body, headers=headers)
    assert response.status == 422
    assert (await response.json())["message"].startswith("malformed_notice: ")
    assert sink.events == []
    assert await notices() == []


async def test_a_notice_for_another_merchant_is_refused(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    await prepaid(pay_client)
    wechatpay.mchid = "1900000000"
    response = await post(pay_client, wechatpay.paid("D2611200001"))
    assert response.status == 422
    assert sink.events == []


async def test_a_refund_and_its_notices(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    await prepaid(pay_client)
    assert (await post(pay_client, wechatpay.paid("D2611200001"))).status == 204
    result = await wechatpay_of(pay_client).refund(refund_request())
    assert result.status == "processing"

    for status in ("ABNORMAL", "SUCCESS"):  # the bank refused it, then ops made it go through
        response = await post(pay_client, wechatpay.refund_result("R2611200001", status))
        assert response.status == 204

    paid, abnormal, succeeded = sink.events
    assert paid.event_type == "payment.succeeded"
    assert (abnormal.event_type, abnormal.paid_at) == ("refund.abnormal", None)
    assert succeeded == PaymentEvent(
        provider="wechatpay",
        event_type="refund.succeeded",
        transaction_id=result.refund_id,
        out_trade_no="D2611200001",
        out_refund_no="R2611200001",
        amount=2_800,
        payer_total=2_800,
        paid_at=succeeded.paid_at,
    )
    assert succeeded.paid_at is not None
    rows = await notices()
    assert [(r["event_type"], r["transaction_id"], r["status"]) for r in rows] == [
        ("payment.succeeded", wechatpay.orders["D2611200001"].transaction_id, "applied"),
        ("refund.abnormal", result.refund_id, "applied"),
        ("refund.succeeded", result.refund_id, "applied"),
    ]


async def test_a_closed_refund_is_a_failed_refund(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    await prepaid(pay_client)
    await post(pay_client, wechatpay.paid("D2611200001"))
    await wechatpay_of(pay_client).refund(refund_request())
    response = await post(pay_client, wechatpay.refund_result("R2611200001", "CLOSED"))
    assert response.status == 204
    assert sink.events[-1].event_type == "refund.failed"


async def test_an_amount_mismatch_is_refused_recorded_logged_and_acknowledged(
    aiohttp_client: Any,
    settings: Settings,
    wechatpay: FakeWechatPay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(settings.with_values(**wechatpay.settings()))
    app[keys.PAYMENT_SINK] = RecordingSink(orders={"D2611200001": 12_800})
    client = await aiohttp_client(app)

    with caplog.at_level(logging.WARNING, "deer.payments.notices"):
        response = await post(client, wechatpay.paid("D2611200001", total=1))

    assert response.status == 204  # final: WeChat Pay must not send it again
    [row] = await notices()
    assert (row["status"], row["error"]) == ("refused", "amount_mismatch: paid 1, payable 12800")
    assert row["order_id"] == ORDER_ID
    assert "was refused: amount_mismatch" in caplog.text


async def test_a_sink_that_fails_makes_wechat_pay_retry(
    pay_client: TestClient[Any, Any],
    wechatpay: FakeWechatPay,
    sink: RecordingSink,
) -> None:
    await prepaid(pay_client)
    notice = wechatpay.paid("D2611200001")
    sink.fail_next = 1

    response = await post(pay_client, notice)

    assert response.status == 503
    assert json.loads(await response.read()) == {
        "code": "FAIL",
        "message": "unavailable: the orders are unavailable",
    }
    assert [(r["status"], r["error"]) for r in await notices()] == [
        ("failed", "Unavailable: the orders are unavailable")
    ]
    assert (await post(pay_client, notice)).status == 204  # WeChat Pay's retry
    assert [(r["status"], r["error"]) for r in await notices()] == [("applied", "")]


async def test_a_payment_for_no_order_is_refused_as_an_unknown_order(
    aiohttp_client: Any, settings: Settings, wechatpay: FakeWechatPay
) -> None:
    client = await aiohttp_client(create_app(settings.with_values(**wechatpay.settings())))
    response = await post(client, wechatpay.paid("D2611200001"))
    assert response.status == 204
    [row] = await notices()
    assert (row["status"], row["error"]) == ("refused", "unknown_order: no order D2611200001")


async def test_a_public_key_verifies_notices_by_its_id(
    aiohttp_client: Any, settings: Settings, wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    key_id = "PUB_KEY_ID_0119000091912025052000000000000001"
    values = wechatpay.settings() | {
        "wechatpay_platform_cert_file": wechatpay.folder / "wechatpay_pub_key.pem",
        "wechatpay_platform_serial": key_id,
    }
    app = create_app(settings.with_values(**values))
    app[keys.PAYMENT_SINK] = sink
    client = await aiohttp_client(app)
    assert (await post(client, wechatpay.paid("D2611200001", serial=key_id))).status == 204
    assert (await post(client, wechatpay.paid("D2611200001"))).status == 401  # the cert serial
    assert len(sink.events) == 1


@pytest.mark.parametrize("provider", ["alipay", "WECHATPAY", "999999"])
async def test_an_unknown_provider_is_not_found(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, provider: str
) -> None:
    headers, body = wechatpay.paid("D2611200001")
    response = await pay_client.post(f"/api/payments/{provider}/notify", data=body, headers=headers)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "unknown_payment_provider"
    assert await PaymentNotice.all().count() == 0


async def test_a_failed_replay_does_not_undo_an_applied_notice(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, sink: RecordingSink
) -> None:
    await prepaid(pay_client)
    notice = wechatpay.paid("D2611200001")
    assert (await post(pay_client, notice)).status == 204
    sink.fail_next = 1
    assert (await post(pay_client, notice)).status == 503
    assert [(r["status"], r["error"]) for r in await notices()] == [("applied", "")]
