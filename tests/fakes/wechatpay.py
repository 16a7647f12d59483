"""A local stand-in for WeChat Pay API v3: JSAPI prepay, refunds, and the notices it sends.

It checks what the real one checks of our requests (the `Authorization` signature with the
merchant's public key, the merchant id and certificate serial, a fresh timestamp, the
required fields), answers in WeChat Pay's shapes signed with a platform key of its own, keeps
orders and refunds by the merchant's numbers (a repeat with the same parameters gets the same
answer, with others `OUT_TRADE_NO_USED`), records every call, and can be told to fail. It
also writes the notices WeChat Pay would send, signed and encrypted, or spoilt on purpose.

Every key is generated here (RSA 2048); `settings()` gives the `DEER_WECHATPAY_*` values
pointing at the key files it wrote. Tests use the `wechatpay` fixture:
`from tests.fakes.wechatpay import wechatpay_fixture  # noqa: F401`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import json
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

PREPAY_PATH: Final = "/v3/pay/transactions/jsapi"
REFUND_PATH: Final = "/v3/refund/domestic/refunds"
BEIJING: Final = dt.timezone(dt.timedelta(hours=8))
_AUTH: Final = re.compile(r'(\w+)="([^"]*)"')

# WeChat Pay's HTTP status for each error code it answers with.
STATUS_OF: Final = {
    "PARAM_ERROR": 400,
    "INVALID_REQUEST": 400,
    "ORDER_CLOSED": 400,
    "SIGN_ERROR": 401,
    "ORDERPAID": 403,
    "NOT_ENOUGH": 403,
    "OUT_TRADE_NO_USED": 403,
    "NO_AUTH": 403,
    "RESOURCE_NOT_EXISTS": 404,
    "FREQUENCY_LIMITED": 429,
    "SYSTEM_ERROR": 500,
    "BANK_ERROR": 500,
}


@functools.cache
def rsa_key(which: str) -> rsa.RSAPrivateKey:
    """One RSA 2048 key per role for the whole test session (making one takes a while)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key: rsa.RSAPrivateKey, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )


def rsa_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verifies(key: rsa.RSAPublicKey, message: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def pem_private(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_public(key: rsa.RSAPublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@dataclass(frozen=True)
class Failure:
    status: int | None = None  # answer with this HTTP status and a WeChat Pay error
    code: str | None = None  # ... or with this error code (its usual status)
    delay: float = 0.0  # hold the answer back first (the fixture's teardown cuts it short)
    unsigned: bool = False  # answer normally but without WeChat Pay's signature
    forged: bool = False  # answer normally with a signature that does not verify


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Order:
    request: dict[str, Any]
    prepay_id: str
    transaction_id: str
    paid: bool = False
    refunded: int = 0


@dataclass
class Refund:
    request: dict[str, Any]
    refund_id: str
    created: str
    status: str = "PROCESSING"


@dataclass
class FakeWechatPay:
    """The fake server: `.app` to serve, `.url` once served."""

    folder: Path
    mchid: str = "1900009191"
    appid: str = "wx0123456789abcdef"
    merchant_serial: str = "3775B6A45ACD588826D15E583A95F5DD3B8B8D5B"
    api_v3_key: str = field(default_factory=lambda: secrets.token_hex(16))
    url: str = ""
    calls: list[Call] = field(default_factory=list)
    orders: dict[str, Order] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.merchant_key = rsa_key("merchant")
        self.platform_key = rsa_key("platform")
        self.platform_cert = certificate(self.platform_key, "Tenpay.com Root CA")
        self.platform_serial = f"{self.platform_cert.serial_number:X}"
        self.app = web.Application()
        self.app.router.add_post(PREPAY_PATH, self._prepay)
        self.app.router.add_post(REFUND_PATH, self._refund)
        self._failures: deque[Failure] = deque()
        self._spoil: Failure | None = None  # how to spoil the answer being made
        self._closing = asyncio.Event()
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "apiclient_key.pem").write_bytes(pem_private(self.merchant_key))
        (self.folder / "wechatpay_cert.pem").write_bytes(
            self.platform_cert.public_bytes(serialization.Encoding.PEM)
        )
        (self.folder / "wechatpay_pub_key.pem").write_bytes(
            pem_public(self.platform_key.public_key())
        )

    def settings(self, notify_base_url: str = "https://shop.example.com") -> dict[str, Any]:
        """The settings that make deer talk to this fake (pass to `with_values`)."""
        return {
            "payment_providers": ("dev", "wechatpay"),
            "payment_notify_base_url": notify_base_url,
            "wechatpay_mchid": self.mchid,
            "wechatpay_appid": self.appid,
            "wechatpay_serial_no": self.merchant_serial,
            "wechatpay_private_key_file": self.folder / "apiclient_key.pem",
            "wechatpay_api_v3_key": SecretStr(self.api_v3_key),
            "wechatpay_platform_cert_file": self.folder / "wechatpay_cert.pem",
            "wechatpay_platform_serial": None,
            "wechatpay_api_base": self.url,
        }

    def fail_next(self, times: int = 1, **how: Any) -> None:
        """Answer the next `times` calls as a `Failure(**how)` says."""
        self._failures.extend(Failure(**how) for _ in range(times))

    def close(self) -> None:
        self._closing.set()

    # --- the API -------------------------------------------------------------------------

    async def _prepay(self, request: web.Request) -> web.Response:
        body, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        required = ("appid", "mchid", "description", "out_trade_no", "notify_url")
        missing = [name for name in required if not body.get(name)]
        amount, payer = body.get("amount") or {}, body.get("payer") or {}
        if missing or not isinstance(amount.get("total"), int) or not payer.get("openid"):
            return self._error("PARAM_ERROR", f"missing {missing or 'amount or payer'}")
        if body["mchid"] != self.mchid or body["appid"] != self.appid:
            return self._error("APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        number = body["out_trade_no"]
        order = self.orders.get(number)
        if order is None:
            order = Order(body, "wx" + secrets.token_hex(15), "42" + secrets.token_hex(13))
            self.orders[number] = order
        elif order.paid:
            return self._error("ORDERPAID", "该订单已支付")
        elif order.request != body:
            return self._error("OUT_TRADE_NO_USED", "商户订单号重复")
        return self._answer({"prepay_id": order.prepay_id})

    async def _refund(self, request: web.Request) -> web.Response:
        body, refusal = await self._accept(request)
        if refusal is not None:
            return refusal
        amount = body.get("amount") or {}
        order = self.orders.get(body.get("out_trade_no", ""))
        if not body.get("out_refund_no") or not isinstance(amount.get("refund"), int):
            return self._error("PARAM_ERROR", "缺少参数")
        if order is None or not order.paid:
            return self._error("RESOURCE_NOT_EXISTS", "订单不存在")
        existing = self.refunds.get(body["out_refund_no"])
        if existing is None:
            if order.refunded + amount["refund"] > order.request["amount"]["total"]:
                return self._error("INVALID_REQUEST", "申请退款金额超过订单可退金额")
            order.refunded += amount["refund"]
            now = dt.datetime.now(BEIJING).isoformat(timespec="seconds")
            existing = Refund(body, "50" + secrets.token_hex(14), now)
            self.refunds[body["out_refund_no"]] = existing
        elif existing.request["amount"] != amount:
            return self._error("INVALID_REQUEST", "退款单号重复")
        return self._answer(self._refund_answer(existing, order))

    def _refund_answer(self, refund: Refund, order: Order) -> dict[str, Any]:
        total = order.request["amount"]["total"]
        return {
            "refund_id": refund.refund_id,
            "out_refund_no": refund.request["out_refund_no"],
            "transaction_id": order.transaction_id,
            "out_trade_no": refund.request["out_trade_no"],
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": refund.created,
            "status": refund.status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": total,
                "refund": refund.request["amount"]["refund"],
                "payer_total": total,
                "payer_refund": refund.request["amount"]["refund"],
                "currency": "CNY",
            },
        }

    async def _accept(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        """Record the call, verify its signature, apply a scripted failure."""
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        self.calls.append(Call(request.method, request.path_qs, dict(request.headers), body))
        if not self._signed_by_merchant(request, raw):
            return body, self._error("SIGN_ERROR", "签名错误")
        failure = self._failures.popleft() if self._failures else None
        if failure is None:
            return body, None
        if failure.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), failure.delay)
        if failure.code is not None:
            return body, self._error(failure.code, "scripted", failure.status)
        if failure.status is not None:
            return body, web.Response(status=failure.status, text="<html>502 Bad Gateway</html>")
        self._spoil = failure
        return body, None

    def _signed_by_merchant(self, request: web.Request, raw: bytes) -> bool:
        scheme, _, params = request.headers.get("Authorization", "").partition(" ")
        fields = dict(_AUTH.findall(params))
        if scheme != "WECHATPAY2-SHA256-RSA2048" or fields.get("mchid") != self.mchid:
            return False
        if fields.get("serial_no") != self.merchant_serial:
            return False
        timestamp, nonce = fields.get("timestamp", ""), fields.get("nonce_str", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300 or not nonce:
            return False
        message = b"%s\n%s\n%s\n%s\n%s\n" % (
            request.method.encode(),
            request.path_qs.encode(),
            timestamp.encode(),
            nonce.encode(),
            raw,
        )
        return rsa_verifies(self.merchant_key.public_key(), message, fields.get("signature", ""))

    def _answer(self, data: dict[str, Any]) -> web.Response:
        body = json.dumps(data, ensure_ascii=False).encode()
        spoil, self._spoil = self._spoil, None
        headers = {"Content-Type": "application/json", "Request-ID": secrets.token_hex(8)}
        if spoil is None or not spoil.unsigned:
            headers.update(self.signature_headers(body))
        if spoil is not None and spoil.forged:
            headers["Wechatpay-Signature"] = rsa_sign(rsa_key("intruder"), body)
        return web.Response(body=body, headers=headers)

    def _error(self, code: str, message: str, status: int | None = None) -> web.Response:
        body = json.dumps({"code": code, "message": message}, ensure_ascii=False)
        return web.Response(
            status=status or STATUS_OF.get(code, 400),
            body=body.encode(),
            headers={"Content-Type": "application/json"},
        )

    # --- notices -------------------------------------------------------------------------

    def signature_headers(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        serial: str | None = None,
        key: rsa.RSAPrivateKey | None = None,
    ) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        nonce = secrets.token_hex(16)
        message = b"%s\n%s\n%s\n" % (stamp.encode(), nonce.encode(), body)
        return {
            "Wechatpay-Timestamp": stamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": rsa_sign(key or self.platform_key, message),
            "Wechatpay-Serial": serial or self.platform_serial,
            "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
        }

    def notice(
        self,
        event_type: str,
        resource: dict[str, Any],
        *,
        original_type: str = "transaction",
        api_v3_key: str | None = None,
        **signing: Any,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of a notice as WeChat Pay sends it (`signing`: see
        `signature_headers`; `api_v3_key` encrypts with another key)."""
        nonce, associated = secrets.token_hex(6), original_type
        key = (api_v3_key or self.api_v3_key).encode()
        plain = json.dumps(resource, ensure_ascii=False).encode()
        ciphertext = AESGCM(key).encrypt(nonce.encode(), plain, associated.encode())
        envelope = {
            "id": f"EV-{secrets.token_hex(8)}",
            "create_time": dt.datetime.now(BEIJING).isoformat(timespec="seconds"),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功" if event_type == "TRANSACTION.SUCCESS" else "退款状态变更",
            "resource": {
                "original_type": original_type,
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": associated,
                "nonce": nonce,
            },
        }
        body = json.dumps(envelope, ensure_ascii=False).encode()
        return {"Content-Type": "application/json", **self.signature_headers(body, **signing)}, body

    def paid(
        self,
        out_trade_no: str,
        *,
        total: int | None = None,
        payer_total: int | None = None,
        openid: str = "o-buyer",
        **options: Any,
    ) -> tuple[dict[str, str], bytes]:
        """The buyer paid the order prepaid as `out_trade_no`: its TRANSACTION.SUCCESS."""
        order = self.orders.get(out_trade_no)
        if order is None:  # a notice for an order we never saw prepaid
            order = Order({"amount": {"total": total or 1}}, "", "42" + secrets.token_hex(13))
        order.paid = True
        amount = order.request["amount"]["total"] if total is None else total
        resource = {
            "appid": self.appid,
            "mchid": self.mchid,
            "out_trade_no": out_trade_no,
            "transaction_id": order.transaction_id,
            "trade_type": "JSAPI",
            "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": dt.datetime.now(BEIJING).isoformat(timespec="seconds"),
            "payer": {"openid": openid},
            "amount": {
                "total": amount,
                "payer_total": amount if payer_total is None else payer_total,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }
        return self.notice("TRANSACTION.SUCCESS", resource, **options)

    def refund_result(
        self, out_refund_no: str, status: str = "SUCCESS", **options: Any
    ) -> tuple[dict[str, str], bytes]:
        """WeChat Pay finished the refund `out_refund_no`: its REFUND.<status> notice."""
        refund = self.refunds[out_refund_no]
        refund.status = status
        order = self.orders[refund.request["out_trade_no"]]
        answer = self._refund_answer(refund, order)
        resource = {
            "mchid": self.mchid,
            "out_trade_no": answer["out_trade_no"],
            "transaction_id": answer["transaction_id"],
            "out_refund_no": out_refund_no,
            "refund_id": refund.refund_id,
            "refund_status": status,
            "user_received_account": answer["user_received_account"],
            "amount": {key: answer["amount"][key] for key in ("total", "refund", "payer_total")}
            | {"payer_refund": answer["amount"]["payer_refund"]},
        }
        if status == "SUCCESS":
            resource["success_time"] = dt.datetime.now(BEIJING).isoformat(timespec="seconds")
        return self.notice(f"REFUND.{status}", resource, original_type="refund", **options)


def tampered(body: bytes) -> bytes:
    """The same notice with one field changed after it was signed."""
    data = json.loads(body)
    data["summary"] = "支付成功!"
    return json.dumps(data, ensure_ascii=False).encode()


@pytest.fixture(name="wechatpay")
async def wechatpay_fixture(aiohttp_server: Any, tmp_path: Path) -> AsyncIterator[FakeWechatPay]:
    """A FakeWechatPay served on a local port (`.url`), its key files in `tmp_path`."""
    fake = FakeWechatPay(tmp_path / "wechatpay")
    server = await aiohttp_server(fake.app)
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.close()
