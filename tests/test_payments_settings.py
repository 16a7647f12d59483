"""Payment settings: which providers run where, WeChat Pay's credentials checked at start,
the dev secret kept in the data folder."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from config.settings import SettingsError, dev_payment_secret, kept_secret, load_settings
from deer.payments.wechatpay import Keys, serial_key
from tests.fakes.wechatpay import FakeWechatPay, pem_private, rsa_key

RUN = Path(__file__).resolve().parent.parent / "run.py"


@pytest.fixture
def fake(tmp_path: Path) -> FakeWechatPay:
    return FakeWechatPay(tmp_path / "keys")


def wechatpay_env(fake: FakeWechatPay, **changes: Any) -> dict[str, Any]:
    values = fake.settings() | {"wechatpay_api_base": "https://api.mch.weixin.qq.com"}
    values["wechatpay_api_v3_key"] = fake.api_v3_key
    return {"_env_file": None, **values, **changes}


def test_dev_runs_in_development_and_nothing_in_production() -> None:
    assert load_settings(_env_file=None).enabled_payment_providers == ("dev",)
    production = load_settings(_env_file=None, env="production")
    assert production.enabled_payment_providers == ()


def test_providers_are_read_from_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEER_PAYMENT_PROVIDERS", "")
    assert load_settings(_env_file=None).enabled_payment_providers == ()
    monkeypatch.setenv("DEER_PAYMENT_PROVIDERS", "alipay")
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    assert str(raised.value) == "DEER_PAYMENT_PROVIDERS: Input should be 'dev' or 'wechatpay'"


def test_the_dev_provider_is_refused_in_production() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None, env="production", payment_providers="dev")
    assert str(raised.value) == (
        "DEER_PAYMENT_PROVIDERS: the dev provider cannot be enabled in production"
    )


def test_complete_wechatpay_settings_load(fake: FakeWechatPay) -> None:
    settings = load_settings(**wechatpay_env(fake))
    assert settings.enabled_payment_providers == ("dev", "wechatpay")
    keys = Keys.load(settings)
    assert list(keys.platform_keys) == [serial_key(fake.platform_serial)]
    assert keys.api_v3_key == fake.api_v3_key.encode()
    assert fake.api_v3_key not in repr(settings) + repr(keys)
    assert settings.described()["DEER_WECHATPAY_API_V3_KEY"] == "(set)"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"wechatpay_mchid": None}, "DEER_WECHATPAY_MCHID must be set"),
        ({"wechatpay_serial_no": ""}, "DEER_WECHATPAY_SERIAL_NO must be set"),
        ({"payment_notify_base_url": None}, "DEER_PAYMENT_NOTIFY_BASE_URL must be set"),
        ({"wechatpay_appid": None}, "DEER_WECHATPAY_APPID (or DEER_WECHAT_APPID) must be set"),
        (
            {"wechatpay_private_key_file": "/nowhere/key.pem"},
            "DEER_WECHATPAY_PRIVATE_KEY_FILE must name a readable PEM file",
        ),
        (
            {"wechatpay_platform_cert_file": None},
            "DEER_WECHATPAY_PLATFORM_CERT_FILE must name a readable PEM file",
        ),
        ({"wechatpay_api_v3_key": None}, "DEER_WECHATPAY_API_V3_KEY must be the 32-byte"),
        ({"wechatpay_api_v3_key": "short"}, "DEER_WECHATPAY_API_V3_KEY must be the 32-byte"),
        (
            {"payment_notify_base_url": "shop.example.com"},
            "DEER_PAYMENT_NOTIFY_BASE_URL: must be an http(s):// base URL",
        ),
        (
            {
                "env": "production",
                "payment_providers": "wechatpay",
                "payment_notify_base_url": "http://shop.example.com",
            },
            "DEER_PAYMENT_NOTIFY_BASE_URL must be https:// in production",
        ),
    ],
)
def test_wechatpay_without_its_credentials_names_the_variable(
    fake: FakeWechatPay, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(**wechatpay_env(fake, **changes))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert fake.api_v3_key not in str(raised.value)


def test_the_appid_defaults_to_the_mini_programs(fake: FakeWechatPay) -> None:
    settings = load_settings(**wechatpay_env(fake, wechatpay_appid=None, wechat_appid="wxmini"))
    assert settings.wechatpay_app == "wxmini"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"wechatpay_platform_cert_file": "keys/wechatpay_pub_key.pem"},
            "DEER_WECHATPAY_PLATFORM_SERIAL must be set to the public key's id",
        ),
        (
            {"wechatpay_platform_serial": "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"},
            "DEER_WECHATPAY_PLATFORM_SERIAL: 5157F09EFDC096DE15EBE81A47057A7232F1B8E1 is not",
        ),
        (
            {"wechatpay_private_key_file": "keys/wechatpay_cert.pem"},
            "DEER_WECHATPAY_PRIVATE_KEY_FILE: not a readable unencrypted PEM private key",
        ),
        (
            {"wechatpay_platform_cert_file": "keys/apiclient_key.pem"},
            "DEER_WECHATPAY_PLATFORM_CERT_FILE: not a PEM certificate or public key",
        ),
    ],
)
def test_unusable_key_files_are_refused_at_start(
    fake: FakeWechatPay, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    paths = {
        k: tmp_path / v if isinstance(v, str) and v.startswith("keys/") else v
        for k, v in changes.items()
    }
    settings = load_settings(**wechatpay_env(fake, **paths))
    with pytest.raises(SettingsError) as raised:
        Keys.load(settings)
    assert str(raised.value).startswith(message)


def test_serials_compare_without_case_or_leading_zeros() -> None:
    assert serial_key("00ab12") == serial_key("AB12")
    assert serial_key("PUB_KEY_ID_0011") == "PUB_KEY_ID_0011"


def test_the_dev_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    settings = load_settings(_env_file=None, data_dir=tmp_path)
    first = dev_payment_secret(settings)
    assert len(first) >= 32
    assert dev_payment_secret(settings) == first
    path = tmp_path / "dev-payment-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    configured = load_settings(_env_file=None, data_dir=tmp_path, dev_payment_secret="mine")
    assert dev_payment_secret(configured) == "mine"


def test_processes_starting_together_agree_on_a_kept_secret(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret"
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: kept_secret(path), range(32)))
    assert len(secrets) == 1
    assert os.listdir(path.parent) == ["secret"]  # no drafts left behind


def test_a_merchant_key_must_be_rsa(fake: FakeWechatPay, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    path = tmp_path / "ec.pem"
    path.write_bytes(pem_private(ec.generate_private_key(ec.SECP256R1())))  # type: ignore[arg-type]
    settings = load_settings(**wechatpay_env(fake, wechatpay_private_key_file=path))
    with pytest.raises(SettingsError) as raised:
        Keys.load(settings)
    assert str(raised.value) == (
        "DEER_WECHATPAY_PRIVATE_KEY_FILE: the merchant API key must be an RSA key"
    )
    assert rsa_key("merchant") is fake.merchant_key


def test_serve_stops_with_one_line_naming_an_unusable_key_file(
    fake: FakeWechatPay, tmp_path: Path
) -> None:
    broken = tmp_path / "apiclient_key.pem"
    broken.write_text("not a key", encoding="utf-8")
    env = {
        f"DEER_{name.upper()}": str(value)
        for name, value in wechatpay_env(fake).items()
        if value is not None and name != "_env_file"
    }
    env |= {
        "DEER_WECHATPAY_API_V3_KEY": fake.api_v3_key,
        "DEER_PAYMENT_PROVIDERS": "wechatpay",
        "DEER_WECHATPAY_PRIVATE_KEY_FILE": str(broken),
        "DEER_DATABASE_URL": "postgresql://deer@127.0.0.1:1/deer",  # never reached
        "DEER_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [sys.executable, str(RUN), "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "deer: invalid setting DEER_WECHATPAY_PRIVATE_KEY_FILE: "
        "not a readable unencrypted PEM private key"
    ]
    assert fake.api_v3_key not in result.stderr + result.stdout
