"""The process settings: read once from `DEER_*` variables (and `.env`), validated, frozen."""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX: Final = "DEER_"
MIB: Final = 1024 * 1024
PaymentProviderName = Literal["dev", "wechatpay"]
WECHATPAY_API_V3_KEY_BYTES: Final = 32


class SettingsError(Exception):
    """A setting is wrong; the message names the variable and is safe to print."""


class Settings(BaseSettings):
    """Everything the process reads from its environment. Frozen after validation."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    env: Literal["development", "production"] = "development"
    database_url: SecretStr | None = None
    redis_url: SecretStr | None = None
    search_url: SecretStr | None = None
    data_dir: Path = Path("var")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    jwt_secret: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_private_key_file: Path | None = None  # RS256: PEM private key (signs)
    jwt_public_key_file: Path | None = None  # RS256: PEM public key (verifies)
    jwt_leeway: int = Field(default=10, ge=0, le=300)  # seconds of clock skew tolerated
    access_token_ttl: int = Field(default=15 * 60, ge=30, le=24 * 3600)
    refresh_token_ttl: int = Field(default=14 * 24 * 3600, ge=300, le=365 * 24 * 3600)
    login_failures_per_account: int = Field(default=5, ge=1, le=1000)
    login_failures_per_ip: int = Field(default=30, ge=1, le=100_000)
    login_window: int = Field(default=15 * 60, ge=1, le=24 * 3600)  # seconds
    wechat_appid: str | None = None
    wechat_secret: SecretStr | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    policy_reload_interval: float = Field(default=30.0, gt=0, le=3600)
    timezone: str = "Asia/Shanghai"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "text"] = "auto"
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    max_body_size: int = Field(default=MIB, ge=1024, le=1024 * MIB)
    db_pool_min: int = Field(default=1, ge=0, le=100)
    db_pool_max: int = Field(default=10, ge=1, le=500)
    redis_namespace: str = Field(default="deer", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    redis_pool_max: int = Field(default=50, ge=1, le=10_000)
    embedded_pg_port: int | None = Field(default=None, ge=1, le=65535)
    embedded_redis_port: int | None = Field(default=None, ge=1, le=65535)
    shutdown_timeout: float = Field(default=10.0, gt=0, le=300)
    auto_migrate: bool | None = None  # None: apply migrations at start when embedded

    # --- commerce (deer/shop, deer/catalog, deer/payments; docs/commerce.md) -----------
    order_payment_timeout: float = Field(default=30 * 60, gt=0, le=7 * 24 * 3600)  # seconds
    order_auto_complete: float = Field(default=10 * 24 * 3600, gt=0, le=365 * 24 * 3600)  # s
    member_points_per_yuan: int = Field(default=1, ge=0, le=1000)
    # Cumulative spend (fen) from which each level starts: level n needs thresholds[n].
    member_level_thresholds: Annotated[tuple[int, ...], NoDecode] = (
        0,
        100_000,
        500_000,
        2_000_000,
        10_000_000,
    )

    # --- payments (deer/payments, docs/payments.md) --------------------------------------
    # Enabled providers; None: `dev` in development, none in production.
    payment_providers: Annotated[tuple[PaymentProviderName, ...] | None, NoDecode] = None
    payment_notify_base_url: str | None = None  # public base URL the providers call back
    dev_payment_secret: SecretStr | None = None  # None: generated into the data folder
    wechatpay_mchid: str | None = None
    wechatpay_appid: str | None = None  # None: DEER_WECHAT_APPID (the mini-program's)
    wechatpay_serial_no: str | None = None  # serial of the merchant API certificate
    wechatpay_private_key_file: Path | None = None  # the merchant API private key (PEM)
    wechatpay_api_v3_key: SecretStr | None = None  # 32 bytes: decrypts notices
    wechatpay_platform_cert_file: Path | None = None  # platform certificate or public key (PEM)
    wechatpay_platform_serial: str | None = None  # its serial / public key id (PUB_KEY_ID_...)
    wechatpay_api_base: str = "https://api.mch.weixin.qq.com"

    # --- actor runtime (actors/, docs/actors.md) ---------------------------------------
    # Partitions per actor kind: fixed for the life of a kind (a key's partition must not move).
    actor_partitions: int = Field(default=16, ge=1, le=4096)
    actor_lease_ttl: float = Field(default=10.0, gt=0, le=600)  # seconds a lease lives unrenewed
    actor_lease_renew: float = Field(default=3.0, gt=0, le=600)  # seconds between renewals
    actor_max_in_flight: int = Field(default=1000, ge=1, le=1_000_000)  # entries read, not acked
    actor_concurrency: int = Field(default=64, ge=1, le=10_000)  # actor turns running at once
    # Commit (and load) statements of a kind in flight at once, each a batch of turns: a turn
    # ready while they are all busy waits and goes in the next batch (keep below db_pool_max).
    actor_commits_in_flight: int = Field(default=1, ge=1, le=64)
    actor_max_attempts: int = Field(default=5, ge=1, le=100)  # failures before a dead letter
    actor_ask_timeout: float = Field(default=5.0, gt=0, le=3600)  # seconds
    actor_outcome_ttl: int = Field(default=24 * 3600, ge=1, le=30 * 24 * 3600)  # seconds
    # Relay the transactional outbox to deer:events from this process (one relay works at a
    # time across processes); off for a process that should leave it to others.
    outbox_relay: bool = True
    actor_idle_timeout: float = Field(default=300.0, gt=0, le=24 * 3600)  # passivation, seconds
    # Entries a partition stream may hold (unread plus unacknowledged, trimmed every renewal)
    # before tell/ask refuse with 503 actors_overloaded: the bound on Redis memory per stream.
    actor_max_stream_length: int = Field(default=100_000, ge=1, le=100_000_000)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
        return value

    @field_validator("member_level_thresholds", mode="before")
    @classmethod
    def _split_thresholds(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("member_level_thresholds")
    @classmethod
    def _thresholds_ascend(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or value[0] != 0:
            raise ValueError("the first level threshold must be 0 (every member has a level)")
        if any(later <= earlier for earlier, later in itertools.pairwise(value)):
            raise ValueError("level thresholds must rise strictly, e.g. 0,100000,500000")
        return value

    @field_validator("payment_providers", mode="before")
    @classmethod
    def _split_providers(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("payment_notify_base_url", "wechatpay_api_base")
    @classmethod
    def _http_base(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise ValueError("must be an http(s):// base URL without a query string")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("postgres", "postgresql", "asyncpg"):
                raise ValueError("must be a postgresql:// URL (deer runs on PostgreSQL only)")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = urlsplit(value.get_secret_value()).scheme
            if scheme not in ("redis", "rediss", "unix"):
                raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("search_url")
    @classmethod
    def _search_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and urlsplit(value.get_secret_value()).scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL of Elasticsearch")
        return value

    @model_validator(mode="after")
    def _rs256_needs_keys(self) -> Settings:
        if self.jwt_algorithm == "RS256":
            for name in ("jwt_private_key_file", "jwt_public_key_file"):
                path = getattr(self, name)
                if path is None or not Path(path).is_file():
                    raise ValueError(
                        f"{ENV_PREFIX}{name.upper()} must name a readable PEM file for RS256"
                    )
        return self

    @model_validator(mode="after")
    def _payments_configured(self) -> Settings:
        providers = self.enabled_payment_providers
        if "dev" in providers and self.env == "production":
            raise ValueError(
                f"{ENV_PREFIX}PAYMENT_PROVIDERS: the dev provider cannot be enabled in production"
            )
        if "wechatpay" in providers:
            _check_wechatpay(self)
        return self

    @model_validator(mode="after")
    def _actor_lease_renewed_in_time(self) -> Settings:
        if self.actor_lease_renew >= self.actor_lease_ttl:
            raise ValueError(
                f"{ENV_PREFIX}ACTOR_LEASE_RENEW must be shorter than {ENV_PREFIX}ACTOR_LEASE_TTL"
            )
        return self

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def embedded_redis(self) -> bool:
        return self.redis_url is None

    @property
    def migrate_at_start(self) -> bool:
        return self.embedded_database if self.auto_migrate is None else self.auto_migrate

    @property
    def enabled_payment_providers(self) -> tuple[PaymentProviderName, ...]:
        if self.payment_providers is not None:
            return self.payment_providers
        return ("dev",) if self.env == "development" else ()

    @property
    def wechatpay_app(self) -> str | None:
        """The appid payments are made in: its own setting, else the mini-program's."""
        return self.wechatpay_appid or self.wechat_appid

    @property
    def json_logs(self) -> bool:
        if self.log_format == "auto":
            return self.env == "production"
        return self.log_format == "json"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def with_values(self, **changes: Any) -> Settings:
        """A copy with some values replaced (the engines fill in the URLs they started)."""
        return self.model_copy(update=changes)

    def described(self) -> dict[str, str]:
        """The effective configuration for people: secrets and URL passwords masked."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in ("jwt_secret", "dev_payment_secret"):
                text = "(set)" if value is not None else "(generated, kept in the data folder)"
            elif name == "payment_providers":
                text = ",".join(self.enabled_payment_providers) or "(none)"
            elif isinstance(value, SecretStr):
                text = mask_url(value.get_secret_value()) if name.endswith("_url") else "(set)"
            elif value is None:
                text = "(embedded)" if name in ("database_url", "redis_url") else "(none)"
            elif isinstance(value, tuple):
                text = ",".join(map(str, value)) or "(none)"
            else:
                text = str(value)
            shown[ENV_PREFIX + name.upper()] = text
        return shown


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***`, safe for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; raise `SettingsError` naming the first wrong variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"]).removeprefix("Value error, ")
        if not error["loc"]:  # a rule across fields: its message names the variables
            raise SettingsError(message) from None
        raise SettingsError(f"{ENV_PREFIX}{str(error['loc'][0]).upper()}: {message}") from None


def _check_wechatpay(settings: Settings) -> None:
    """WeChat Pay enabled: every credential it needs is there (the message names the first
    missing variable)."""
    why = f"when {ENV_PREFIX}PAYMENT_PROVIDERS includes wechatpay"
    for name in ("wechatpay_mchid", "wechatpay_serial_no", "payment_notify_base_url"):
        if not getattr(settings, name):
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be set {why}")
    if not settings.wechatpay_app:
        raise ValueError(
            f"{ENV_PREFIX}WECHATPAY_APPID (or {ENV_PREFIX}WECHAT_APPID) must be set {why}"
        )
    for name in ("wechatpay_private_key_file", "wechatpay_platform_cert_file"):
        path = getattr(settings, name)
        if path is None or not Path(path).is_file():
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must name a readable PEM file {why}")
    key = settings.wechatpay_api_v3_key
    if key is None or len(key.get_secret_value().encode()) != WECHATPAY_API_V3_KEY_BYTES:
        raise ValueError(
            f"{ENV_PREFIX}WECHATPAY_API_V3_KEY must be the 32-byte API v3 key set in the "
            f"merchant platform {why}"
        )
    base = settings.payment_notify_base_url or ""
    if settings.env == "production" and not base.startswith("https://"):
        raise ValueError(
            f"{ENV_PREFIX}PAYMENT_NOTIFY_BASE_URL must be https:// in production "
            "(WeChat Pay calls back over HTTPS only)"
        )


def jwt_secret(settings: Settings) -> str:
    """The configured secret, or one generated once and kept in the data folder."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    return kept_secret(settings.data_dir / "jwt-secret")


def dev_payment_secret(settings: Settings) -> str:
    """The dev payment provider's HMAC secret: configured, or generated once and kept."""
    if settings.dev_payment_secret is not None:
        return settings.dev_payment_secret.get_secret_value()
    return kept_secret(settings.data_dir / "dev-payment-secret")


def kept_secret(path: Path) -> str:
    """The secret in `path`, made (0600) on first use. Processes starting together agree:
    the file appears complete or not at all (written aside, then hard-linked into place)."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(secrets.token_urlsafe(48))
    try:
        with contextlib.suppress(FileExistsError):  # another process was first: use its secret
            os.link(draft, path)
    finally:
        draft.unlink()
    return path.read_text(encoding="utf-8").strip()
