"""WeChat Pay API v3 for the mini-program (JSAPI): prepay, refund, and their notices.

Written from WeChat Pay's API v3 rules:
- every request carries `Authorization: WECHATPAY2-SHA256-RSA2048 mchid=...,nonce_str=...,
  signature=...,timestamp=...,serial_no=...`, the signature being RSA-SHA256 (PKCS#1 v1.5)
  with the merchant API key over `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`;
- every answer and every notice is signed by WeChat Pay (`Wechatpay-Timestamp`, `-Nonce`,
  `-Signature`, `-Serial`) over `TIMESTAMP\\nNONCE\\nBODY\\n` with the platform key named by
  the serial (a platform certificate's serial, or a `PUB_KEY_ID_...` public key id);
- a notice's `resource` is AEAD_AES_256_GCM-encrypted with the API v3 key (its nonce and
  associated data beside the ciphertext, which ends with the 16-byte tag);
- a notice is acknowledged with HTTP 200/204 and refused with 4xx/5xx and
  `{"code": "FAIL", "message": ...}`: WeChat Pay then sends it again, for about a day.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import aiohttp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ValidationError

from config.settings import ENV_PREFIX, Settings, SettingsError
from deer.errors import DeerError
from deer.payments.errors import (
    AlreadyPaid,
    BadSignature,
    InvalidPaymentRequest,
    MalformedNotice,
    PaymentClosed,
    PaymentNumberReused,
    PaymentProviderUnavailable,
    PaymentRefused,
    RefundBalanceInsufficient,
)
from deer.payments.provider import (
    EventType,
    NotifyAnswer,
    PaymentEvent,
    PrepayRequest,
    RefundRequest,
    RefundResult,
    RefundStatus,
    fresh_timestamp,
    header,
)

log = logging.getLogger(__name__)

PREPAY_PATH: Final = "/v3/pay/transactions/jsapi"
REFUND_PATH: Final = "/v3/refund/domestic/refunds"
SCHEME: Final = "WECHATPAY2-SHA256-RSA2048"
REQUEST_TIMEOUT: Final = 10.0  # seconds for a whole call; a timed-out call may be repeated
CURRENCY: Final = "CNY"
BEIJING: Final = ZoneInfo("Asia/Shanghai")  # time_expire is written in WeChat Pay's zone
JSON: Final = "application/json"
AES_GCM: Final = "AEAD_AES_256_GCM"
_HEX: Final = re.compile(r"[0-9A-F]+")

# WeChat Pay's error codes that mean "try again later", and those that mean our setup is wrong.
TRANSIENT: Final = frozenset({"SYSTEM_ERROR", "BANK_ERROR", "FREQUENCY_LIMITED"})
MISCONFIGURED: Final = frozenset(
    {"SIGN_ERROR", "MCH_NOT_EXISTS", "APPID_MCHID_NOT_MATCH", "NO_AUTH", "RULE_LIMIT"}
)
REFUSALS: Final[dict[str, type[PaymentRefused]]] = {
    "ORDERPAID": AlreadyPaid,
    "ORDER_CLOSED": PaymentClosed,
    "NOT_ENOUGH": RefundBalanceInsufficient,
    "OUT_TRADE_NO_USED": PaymentNumberReused,
}
REFUND_STATUSES: Final[dict[str, RefundStatus]] = {
    "SUCCESS": "succeeded",
    "PROCESSING": "processing",
    "ABNORMAL": "abnormal",
    "CLOSED": "closed",
}
REFUND_EVENTS: Final[dict[str, EventType]] = {
    "REFUND.SUCCESS": "refund.succeeded",
    "REFUND.ABNORMAL": "refund.abnormal",
    "REFUND.CLOSED": "refund.failed",
}


def serial_key(serial: str) -> str:
    """A serial as compared: case and a hex serial's leading zeros do not matter."""
    serial = serial.strip().upper()
    return (serial.lstrip("0") or "0") if _HEX.fullmatch(serial) else serial


@dataclass(frozen=True)
class Keys:
    """The merchant's signing key and what verifies WeChat Pay, loaded once at start."""

    merchant_key: rsa.RSAPrivateKey = field(repr=False)
    platform_keys: dict[str, rsa.RSAPublicKey]  # by serial_key(serial)
    api_v3_key: bytes = field(repr=False)

    @classmethod
    def load(cls, settings: Settings) -> Keys:
        """Read the key files; a bad one raises `SettingsError` naming its variable."""
        assert settings.wechatpay_private_key_file is not None
        assert settings.wechatpay_platform_cert_file is not None
        assert settings.wechatpay_api_v3_key is not None
        merchant = _pem_private_key(settings.wechatpay_private_key_file)
        serial, platform = _platform_key(
            settings.wechatpay_platform_cert_file, settings.wechatpay_platform_serial
        )
        return cls(
            merchant_key=merchant,
            platform_keys={serial_key(serial): platform},
            api_v3_key=settings.wechatpay_api_v3_key.get_secret_value().encode(),
        )


def _pem_private_key(path: Path) -> rsa.RSAPrivateKey:
    variable = f"{ENV_PREFIX}WECHATPAY_PRIVATE_KEY_FILE"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        raise SettingsError(f"{variable}: not a readable unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SettingsError(f"{variable}: the merchant API key must be an RSA key")
    return key


def _platform_key(path: Path, configured_serial: str | None) -> tuple[str, rsa.RSAPublicKey]:
    """A platform certificate (its own serial) or a WeChat Pay public key (serial configured)."""
    variable = f"{ENV_PREFIX}WECHATPAY_PLATFORM_CERT_FILE"
    serial_variable = f"{ENV_PREFIX}WECHATPAY_PLATFORM_SERIAL"
    try:
        data = path.read_bytes()
    except OSError:
        raise SettingsError(f"{variable}: cannot be read") from None
    serial = configured_serial
    public_key: Any
    try:
        if b"CERTIFICATE" in data:
            certificate = x509.load_pem_x509_certificate(data)
            public_key = certificate.public_key()
            own = f"{certificate.serial_number:X}"
            if serial is not None and serial_key(serial) != serial_key(own):
                raise SettingsError(f"{serial_variable}: {serial} is not the certificate's {own}")
            serial = own
        else:
            public_key = serialization.load_pem_public_key(data)
    except ValueError:
        raise SettingsError(f"{variable}: not a PEM certificate or public key") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SettingsError(f"{variable}: WeChat Pay's key must be an RSA key")
    if not serial:
        raise SettingsError(
            f"{serial_variable} must be set to the public key's id (PUB_KEY_ID_...) "
            f"when {variable} holds a public key"
        )
    return serial, public_key


class _Amount(BaseModel):
    total: int
    payer_total: int | None = None
    refund: int | None = None
    payer_refund: int | None = None
    currency: str = CURRENCY


class _Transaction(BaseModel):
    """The decrypted resource of a TRANSACTION.SUCCESS notice (fields we use)."""

    mchid: str
    appid: str
    out_trade_no: str
    transaction_id: str
    trade_state: str
    success_time: dt.datetime | None = None
    amount: _Amount


class _Refund(BaseModel):
    """The decrypted resource of a REFUND.* notice (fields we use)."""

    mchid: str
    out_trade_no: str
    transaction_id: str
    out_refund_no: str
    refund_id: str
    refund_status: str
    success_time: dt.datetime | None = None
    amount: _Amount


class _Resource(BaseModel):
    algorithm: str
    ciphertext: str
    nonce: str
    associated_data: str = ""
    original_type: str = ""


class _Envelope(BaseModel):
    id: str
    create_time: str = ""
    event_type: str
    resource_type: str = ""
    summary: str = ""
    resource: _Resource


class WechatPay:
    """The provider object, one per process, on the app's shared HTTP client session."""

    name: Final = "wechatpay"

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        keys: Keys,
        clock: Callable[[], float] = time.time,
    ) -> None:
        assert settings.wechatpay_mchid and settings.wechatpay_serial_no and settings.wechatpay_app
        self._mchid = settings.wechatpay_mchid
        self._appid = settings.wechatpay_app
        self._serial_no = settings.wechatpay_serial_no
        self._base = settings.wechatpay_api_base.rstrip("/")
        self._http = http
        self._keys = keys
        self._clock = clock

    # --- the calls -----------------------------------------------------------------------

    async def prepay(self, request: PrepayRequest) -> dict[str, str]:
        """JSAPI prepay; the answer is `wx.requestPayment`'s parameters. WeChat Pay answers a
        repeated prepay with the same parameters with a current prepay_id."""
        if not request.payer_openid:
            raise InvalidPaymentRequest(
                "WeChat Pay needs the buyer's openid for this appid", field="payer_openid"
            )
        payload = {
            "appid": self._appid,
            "mchid": self._mchid,
            "description": request.description,
            "out_trade_no": request.out_trade_no,
            "time_expire": request.expires_at.astimezone(BEIJING).isoformat(timespec="seconds"),
            "notify_url": request.notify_url,
            "amount": {"total": request.amount, "currency": CURRENCY},
            "payer": {"openid": request.payer_openid},
        }
        answer = await self._call("POST", PREPAY_PATH, payload, request.out_trade_no)
        prepay_id = answer.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            log.error("WeChat Pay prepay for %s answered no prepay_id", request.out_trade_no)
            raise PaymentProviderUnavailable(reason="malformed_answer")
        return self.client_params(prepay_id)

    def client_params(self, prepay_id: str) -> dict[str, str]:
        """What the mini-program passes to `wx.requestPayment`, signed for our appid."""
        timestamp, nonce = str(int(self._clock())), _nonce()
        package = f"prepay_id={prepay_id}"
        message = f"{self._appid}\n{timestamp}\n{nonce}\n{package}\n"
        return {
            "timeStamp": timestamp,
            "nonceStr": nonce,
            "package": package,
            "signType": "RSA",
            "paySign": self._sign(message),
        }

    async def refund(self, request: RefundRequest) -> RefundResult:
        """A refund; WeChat Pay answers a repeated out_refund_no with the same refund."""
        payload = {
            "out_trade_no": request.out_trade_no,
            "out_refund_no": request.out_refund_no,
            "notify_url": request.notify_url,
            "amount": {"refund": request.amount, "total": request.total, "currency": CURRENCY},
            **({"reason": request.reason} if request.reason else {}),
        }
        answer = await self._call("POST", REFUND_PATH, payload, request.out_refund_no)
        status, refund_id = answer.get("status"), answer.get("refund_id")
        if status not in REFUND_STATUSES or not isinstance(refund_id, str) or not refund_id:
            log.error("WeChat Pay refund %s answered status %r", request.out_refund_no, status)
            raise PaymentProviderUnavailable(reason="malformed_answer")
        return RefundResult(REFUND_STATUSES[status], refund_id)

    async def _call(
        self, method: str, path: str, payload: dict[str, Any], ref: str
    ) -> dict[str, Any]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        headers = {
            "Authorization": self.authorization(method, path, body),
            "Accept": JSON,
            "Content-Type": JSON,
            "User-Agent": "deer",
        }
        try:
            async with self._http.request(
                method,
                self._base + path,
                data=body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                status, answer, answered = response.status, await response.read(), response.headers
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("WeChat Pay %s for %s failed: %s", path, ref, type(exc).__name__)
            raise PaymentProviderUnavailable(reason=type(exc).__name__) from None
        if not 200 <= status < 300:
            raise _error_of(status, answer, path, ref)
        try:
            self._verify(answered, answer)
        except BadSignature as exc:
            log.error(
                "WeChat Pay's answer to %s for %s does not verify (%s): check %sWECHATPAY_"
                "PLATFORM_CERT_FILE",
                path,
                ref,
                exc.details.get("reason"),
                ENV_PREFIX,
            )
            raise PaymentProviderUnavailable(reason="unverified_answer") from None
        try:
            data = json.loads(answer)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            log.error("WeChat Pay's answer to %s for %s is not a JSON object", path, ref)
            raise PaymentProviderUnavailable(reason="malformed_answer")
        return data

    def authorization(self, method: str, path: str, body: str) -> str:
        """The `Authorization` header of a request to `path` (with its query, if any)."""
        timestamp, nonce = str(int(self._clock())), _nonce()
        signature = self._sign(f"{method}\n{path}\n{timestamp}\n{nonce}\n{body}\n")
        return (
            f'{SCHEME} mchid="{self._mchid}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{self._serial_no}"'
        )

    def _sign(self, message: str) -> str:
        signature = self._keys.merchant_key.sign(
            message.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return base64.b64encode(signature).decode()

    def _verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """WeChat Pay's signature on an answer or a notice, or `BadSignature` saying why."""
        timestamp = fresh_timestamp(header(headers, "Wechatpay-Timestamp"), self._clock())
        nonce = header(headers, "Wechatpay-Nonce")
        signature = header(headers, "Wechatpay-Signature")
        serial = header(headers, "Wechatpay-Serial")
        if not (nonce and signature and serial):
            raise BadSignature("the notice is not signed", reason="missing_signature")
        key = self._keys.platform_keys.get(serial_key(serial))
        if key is None:
            raise BadSignature(
                "the notice is signed with an unknown key", reason="unknown_serial", serial=serial
            )
        message = b"%s\n%s\n%s\n" % (timestamp.encode(), nonce.encode(), body)
        try:
            key.verify(
                base64.b64decode(signature, validate=True),
                message,
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, binascii.Error, ValueError):
            raise BadSignature(reason="signature_mismatch") from None

    # --- notices ---------------------------------------------------------------------------

    async def parse_notify(self, headers: Mapping[str, str], body: bytes) -> PaymentEvent:
        self._verify(headers, body)
        try:
            envelope = _Envelope.model_validate_json(body)
        except ValidationError:
            raise MalformedNotice("the body is not a WeChat Pay notice") from None
        if envelope.resource.algorithm != AES_GCM:
            raise MalformedNotice(f"unknown algorithm {envelope.resource.algorithm}")
        resource = self._decrypt(envelope.resource)
        raw = {
            "id": envelope.id,
            "create_time": envelope.create_time,
            "event_type": envelope.event_type,
            "summary": envelope.summary,
            "resource": resource,
        }
        try:
            if envelope.event_type == "TRANSACTION.SUCCESS":
                return self._payment(_Transaction.model_validate(resource), raw)
            if envelope.event_type in REFUND_EVENTS:
                event_type = REFUND_EVENTS[envelope.event_type]
                return self._refund(event_type, _Refund.model_validate(resource), raw)
        except ValidationError:
            raise MalformedNotice(f"the {envelope.event_type} resource is incomplete") from None
        raise MalformedNotice(f"unsupported event {envelope.event_type}", code="unsupported_notice")

    def _decrypt(self, resource: _Resource) -> dict[str, Any]:
        try:
            plain = AESGCM(self._keys.api_v3_key).decrypt(
                resource.nonce.encode(),
                base64.b64decode(resource.ciphertext, validate=True),
                resource.associated_data.encode(),
            )
        except (InvalidTag, binascii.Error, ValueError):
            # A notice signed by WeChat Pay that does not decrypt: our API v3 key is wrong.
            log.error(
                "a WeChat Pay notice does not decrypt: check %sWECHATPAY_API_V3_KEY", ENV_PREFIX
            )
            raise BadSignature(
                "the notice does not decrypt with our API v3 key", reason="undecryptable"
            ) from None
        try:
            data = json.loads(plain)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise MalformedNotice("the notice's resource is not a JSON object")
        return data

    def _payment(self, paid: _Transaction, raw: dict[str, Any]) -> PaymentEvent:
        if paid.mchid != self._mchid or paid.appid != self._appid:
            raise MalformedNotice("the notice is for another merchant or app")
        if paid.trade_state != "SUCCESS" or paid.amount.currency != CURRENCY:
            raise MalformedNotice(f"trade state {paid.trade_state} in {paid.amount.currency}")
        return PaymentEvent(
            provider=self.name,
            event_type="payment.succeeded",
            transaction_id=paid.transaction_id,
            out_trade_no=paid.out_trade_no,
            out_refund_no=None,
            amount=paid.amount.total,
            payer_total=_or(paid.amount.payer_total, paid.amount.total),
            paid_at=_utc(paid.success_time),
            raw=raw,
        )

    def _refund(self, event_type: EventType, refund: _Refund, raw: dict[str, Any]) -> PaymentEvent:
        if refund.mchid != self._mchid:
            raise MalformedNotice("the notice is for another merchant")
        if refund.amount.refund is None:
            raise MalformedNotice("the refund notice has no refunded amount")
        return PaymentEvent(
            provider=self.name,
            event_type=event_type,
            transaction_id=refund.refund_id,
            out_trade_no=refund.out_trade_no,
            out_refund_no=refund.out_refund_no,
            amount=refund.amount.refund,
            payer_total=_or(refund.amount.payer_refund, refund.amount.refund),
            paid_at=_utc(refund.success_time) if event_type == "refund.succeeded" else None,
            raw=raw,
        )

    def accepted(self) -> NotifyAnswer:
        return NotifyAnswer(204)

    def refused(self, status: int, code: str, message: str) -> NotifyAnswer:
        body = json.dumps({"code": "FAIL", "message": f"{code}: {message}"}, ensure_ascii=False)
        return NotifyAnswer(status, body.encode(), JSON)


def _error_of(status: int, body: bytes, path: str, ref: str) -> DeerError:
    """WeChat Pay's refusal as a domain error with a stable code."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    code = str(data.get("code", "")) if isinstance(data, dict) else ""
    message = str(data.get("message", "")) if isinstance(data, dict) else ""
    details: dict[str, Any] = {
        "provider_code": code,
        "provider_message": message,
        "http_status": status,
    }
    if status >= 500 or code in TRANSIENT:
        log.warning("WeChat Pay %s for %s: HTTP %d %s %s", path, ref, status, code, message)
        return PaymentProviderUnavailable(**details)
    if code in MISCONFIGURED or status == 401:
        log.error(
            "WeChat Pay %s for %s refused our credentials: %s %s (check the %sWECHATPAY_* "
            "settings)",
            path,
            ref,
            code,
            message,
            ENV_PREFIX,
        )
        return PaymentProviderUnavailable(**details)
    log.warning("WeChat Pay %s for %s refused: HTTP %d %s %s", path, ref, status, code, message)
    return REFUSALS.get(code, PaymentRefused)(**details)


def _nonce() -> str:
    return secrets.token_hex(16).upper()


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    return moment.astimezone(dt.UTC) if moment is not None else None
