"""The payment providers this deployment enables (`DEER_PAYMENT_PROVIDERS`), built once at
start and found by name: `app[keys.PAYMENTS].provider("wechatpay")`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import aiohttp
from redis.asyncio import Redis

from config.settings import Settings, dev_payment_secret
from deer.payments.dev import DevPay
from deer.payments.errors import UnknownPaymentProvider
from deer.payments.provider import PaymentProvider
from deer.payments.wechatpay import Keys, WechatPay

NOTIFY_PATH: Final = "/api/payments/{provider}/notify"


class Payments:
    def __init__(self, providers: Mapping[str, PaymentProvider], notify_base_url: str) -> None:
        self._providers = dict(providers)
        self._notify_base_url = notify_base_url.rstrip("/")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._providers)

    def provider(self, name: str) -> PaymentProvider:
        found = self._providers.get(name)
        if found is None:
            raise UnknownPaymentProvider(provider=name)
        return found

    @property
    def dev(self) -> DevPay | None:
        found = self._providers.get(DevPay.name)
        return found if isinstance(found, DevPay) else None

    def notify_url(self, name: str) -> str:
        """The callback URL to give the provider in prepay and refund requests."""
        self.provider(name)
        return self._notify_base_url + NOTIFY_PATH.format(provider=name)


def check_key_files(settings: Settings) -> None:
    """Read the providers' key files before serving: `SettingsError` names a bad one."""
    if "wechatpay" in settings.enabled_payment_providers:
        Keys.load(settings)


def build_payments(settings: Settings, redis: Redis, http: aiohttp.ClientSession) -> Payments:
    """The enabled providers; a key file that cannot be used raises `SettingsError`."""
    providers: dict[str, PaymentProvider] = {}
    for name in settings.enabled_payment_providers:
        if name == "dev":
            providers[name] = DevPay(settings, dev_payment_secret(settings), redis)
        else:
            providers[name] = WechatPay(settings, http, Keys.load(settings))
    base = settings.payment_notify_base_url or f"http://{settings.host}:{settings.port}"
    return Payments(providers, base)
