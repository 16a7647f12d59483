"""WeChat Pay API v3 calls (prepay, refund) from the real app to a local fake, over HTTP."""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from config.settings import Settings
from deer import keys
from deer.app import create_app
from deer.payments import wechatpay as wechatpay_module
from deer.payments.errors import (
    AlreadyPaid,
    InvalidPaymentRequest,
    PaymentClosed,
    PaymentNumberReused,
    PaymentProviderUnavailable,
    PaymentRefused,
    RefundBalanceInsufficient,
)
from deer.payments.provider import RefundResult
from tests.fakes.wechatpay import FakeWechatPay, rsa_key, wechatpay_fixture  # noqa: F401
from tests.payments_helpers import (
    RecordingSink,
    pay_client_fixture,  # noqa: F401
    prepay_request,
    refund_request,
    sink_fixture,  # noqa: F401
    wechatpay_of,
)

AUTHORIZATION = re.compile(
    r'WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="[0-9A-F]{32}",'
    r'signature="[A-Za-z0-9+/=]+",timestamp="\d{10}",'
    r'serial_no="3775B6A45ACD588826D15E583A95F5DD3B8B8D5B"'
)


async def test_prepay_answers_wx_request_payment_parameters(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay
) -> None:
    params = await wechatpay_of(pay_client).prepay(prepay_request())

    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    prepay_id = wechatpay.orders["D2611200001"].prepay_id
    assert params["package"] == f"prepay_id={prepay_id}"
    assert params["signType"] == "RSA"
    message = f"{wechatpay.appid}\n{params['timeStamp']}\n{params['nonceStr']}\n"
    message += f"{params['package']}\n"
    wechatpay.merchant_key.public_key().verify(  # raises if the client could not pay with it
        base64.b64decode(params["paySign"]),
        message.encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    [call] = wechatpay.calls
    assert (call.method, call.path) == ("POST", "/v3/pay/transactions/jsapi")
    assert AUTHORIZATION.fullmatch(call.headers["Authorization"])
    assert call.body == {
        "appid": "wx0123456789abcdef",
        "mchid": "1900009191",
        "description": "鹿角小铺-蓝牙耳机 x1",
        "out_trade_no": "D2611200001",
        "time_expire": "2030-05-20T13:29:35+08:00",
        "notify_url": "https://shop.example.com/api/payments/wechatpay/notify",
        "amount": {"total": 12_800, "currency": "CNY"},
        "payer": {"openid": "o-buyer"},
    }


async def test_prepay_again_is_idempotent_and_other_parameters_conflict(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay
) -> None:
    provider = wechatpay_of(pay_client)
    first = await provider.prepay(prepay_request())
    again = await provider.prepay(prepay_request())
    assert again["package"] == first["package"]
    assert again["nonceStr"] != first["nonceStr"]

    with pytest.raises(PaymentNumberReused) as raised:
        await provider.prepay(prepay_request(amount=12_801))
    assert raised.value.details["provider_code"] == "OUT_TRADE_NO_USED"

    wechatpay.paid("D2611200001")
    with pytest.raises(AlreadyPaid):
        await provider.prepay(prepay_request())


async def test_the_notify_url_names_the_provider(pay_client: TestClient[Any, Any]) -> None:
    payments = pay_client.app[keys.PAYMENTS]
    assert payments.notify_url("wechatpay") == (
        "https://shop.example.com/api/payments/wechatpay/notify"
    )
    assert payments.names == ("dev", "wechatpay")


async def test_prepay_needs_the_buyers_openid(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay
) -> None:
    with pytest.raises(InvalidPaymentRequest) as raised:
        await wechatpay_of(pay_client).prepay(prepay_request(payer_openid=None))
    assert raised.value.details["field"] == "payer_openid"
    assert wechatpay.calls == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"out_trade_no": "D26"}, "out_trade_no"),
        ({"out_trade_no": "D2611 2000"}, "out_trade_no"),
        ({"amount": 0}, "amount"),
        ({"amount": 2**31}, "amount"),
        ({"description": ""}, "description"),
        ({"description": "耳" * 128}, "description"),
    ],
)
def test_a_prepay_request_is_checked_when_made(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidPaymentRequest) as raised:
        prepay_request(**changes)
    assert raised.value.details["field"] == field
    assert raised.value.code == "invalid_payment_request"


async def test_refund_is_idempotent_by_out_refund_no(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay
) -> None:
    provider = wechatpay_of(pay_client)
    await provider.prepay(prepay_request())
    wechatpay.paid("D2611200001")

    first = await provider.refund(refund_request())
    again = await provider.refund(refund_request())

    refund_id = wechatpay.refunds["R2611200001"].refund_id
    assert first == again == RefundResult("processing", refund_id)
    assert wechatpay.orders["D2611200001"].refunded == 2_800
    call = wechatpay.calls[-1]
    assert (call.method, call.path) == ("POST", "/v3/refund/domestic/refunds")
    assert AUTHORIZATION.fullmatch(call.headers["Authorization"])
    assert call.body == {
        "out_trade_no": "D2611200001",
        "out_refund_no": "R2611200001",
        "reason": "七天无理由退货",
        "notify_url": "https://shop.example.com/api/payments/wechatpay/notify",
        "amount": {"refund": 2_800, "total": 12_800, "currency": "CNY"},
    }


@pytest.mark.parametrize(
    ("failure", "error", "code"),
    [
        ({"code": "SYSTEM_ERROR"}, PaymentProviderUnavailable, "payment_provider_unavailable"),
        ({"code": "FREQUENCY_LIMITED"}, PaymentProviderUnavailable, "payment_provider_unavailable"),
        ({"status": 502}, PaymentProviderUnavailable, "payment_provider_unavailable"),
        ({"unsigned": True}, PaymentProviderUnavailable, "payment_provider_unavailable"),
        ({"forged": True}, PaymentProviderUnavailable, "payment_provider_unavailable"),
        ({"code": "SIGN_ERROR"}, PaymentProviderUnavailable, "payment_provider_unavailable"),
        ({"code": "ORDER_CLOSED"}, PaymentClosed, "payment_closed"),
        ({"code": "ORDERPAID"}, AlreadyPaid, "payment_already_paid"),
        ({"code": "PARAM_ERROR"}, PaymentRefused, "payment_refused"),
        ({"code": "NOT_ENOUGH"}, RefundBalanceInsufficient, "refund_insufficient_balance"),
    ],
)
async def test_wechat_pay_failures_become_stable_codes(
    pay_client: TestClient[Any, Any],
    wechatpay: FakeWechatPay,
    failure: dict[str, Any],
    error: type[Exception],
    code: str,
) -> None:
    wechatpay.fail_next(**failure)
    with pytest.raises(error) as raised:
        await wechatpay_of(pay_client).prepay(prepay_request())
    assert getattr(raised.value, "code", None) == code
    # The failure was one call: the same request then goes through.
    params = await wechatpay_of(pay_client).prepay(prepay_request())
    assert params["package"] == f"prepay_id={wechatpay.orders['D2611200001'].prepay_id}"


async def test_a_refused_call_carries_wechat_pays_words(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay
) -> None:
    wechatpay.fail_next(code="PARAM_ERROR")
    with pytest.raises(PaymentRefused) as raised:
        await wechatpay_of(pay_client).prepay(prepay_request())
    assert raised.value.details == {
        "provider_code": "PARAM_ERROR",
        "provider_message": "scripted",
        "http_status": 400,
    }


async def test_a_slow_wechat_pay_times_out(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wechatpay_module, "REQUEST_TIMEOUT", 0.2)
    wechatpay.fail_next(delay=5.0)
    with pytest.raises(PaymentProviderUnavailable) as raised:
        await wechatpay_of(pay_client).refund(refund_request())
    assert raised.value.details == {"reason": "TimeoutError"}


async def test_an_unreachable_wechat_pay_is_unavailable(
    aiohttp_client: Any, settings: Settings, wechatpay: FakeWechatPay, unused_tcp_port: int
) -> None:
    values = wechatpay.settings() | {"wechatpay_api_base": f"http://127.0.0.1:{unused_tcp_port}"}
    client = await aiohttp_client(create_app(settings.with_values(**values)))
    with pytest.raises(PaymentProviderUnavailable) as raised:
        await wechatpay_of(client).prepay(prepay_request())
    assert raised.value.details["reason"].startswith("Client")


async def test_a_wrong_merchant_key_is_a_configuration_error_in_the_log(
    aiohttp_client: Any,
    settings: Settings,
    wechatpay: FakeWechatPay,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.fakes.wechatpay import pem_private

    other = wechatpay.folder / "other_key.pem"
    other.write_bytes(pem_private(rsa_key("intruder")))
    values = wechatpay.settings() | {"wechatpay_private_key_file": other}
    client = await aiohttp_client(create_app(settings.with_values(**values)))
    with (
        caplog.at_level(logging.ERROR, "deer.payments.wechatpay"),
        pytest.raises(PaymentProviderUnavailable) as raised,
    ):
        await wechatpay_of(client).prepay(prepay_request())
    assert raised.value.details["provider_code"] == "SIGN_ERROR"
    assert "DEER_WECHATPAY_* settings" in caplog.text
    assert wechatpay.orders == {}


async def test_refund_status_from_the_answer(
    pay_client: TestClient[Any, Any], wechatpay: FakeWechatPay
) -> None:
    provider = wechatpay_of(pay_client)
    await provider.prepay(prepay_request())
    wechatpay.paid("D2611200001")
    await provider.refund(refund_request())
    wechatpay.refunds["R2611200001"].status = "SUCCESS"
    assert (await provider.refund(refund_request())).status == "succeeded"


async def test_the_default_sink_is_in_place(
    aiohttp_client: Any, settings: Settings, wechatpay: FakeWechatPay
) -> None:
    client = await aiohttp_client(create_app(settings.with_values(**wechatpay.settings())))
    assert not isinstance(client.app[keys.PAYMENT_SINK], RecordingSink)
