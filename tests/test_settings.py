"""Settings: validated at start, frozen, secrets never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings, SettingsError, jwt_secret, load_settings, mask_url

RUN = Path(__file__).resolve().parent.parent / "run.py"


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.embedded_database and settings.embedded_redis
    assert settings.data_dir == Path("var")
    assert settings.port == 8080
    assert settings.timezone == "Asia/Shanghai"
    assert settings.max_body_size == 1024 * 1024
    assert settings.migrate_at_start


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DEER_PORT", "eighty", "DEER_PORT: Input should be a valid integer"),
        ("DEER_PORT", "70000", "DEER_PORT: Input should be less than or equal to 65535"),
        ("DEER_TIMEZONE", "Mars/Olympus", "DEER_TIMEZONE: unknown time zone 'Mars/Olympus'"),
        ("DEER_DATABASE_URL", "mysql://u:p@h/db", "DEER_DATABASE_URL: must be a postgresql://"),
        ("DEER_REDIS_URL", "http://h", "DEER_REDIS_URL: must be a redis://"),
        ("DEER_LOG_LEVEL", "chatty", "DEER_LOG_LEVEL: Input should be 'DEBUG'"),
        ("DEER_MAX_BODY_SIZE", "10", "DEER_MAX_BODY_SIZE: Input should be greater than or equal"),
    ],
)
def test_a_wrong_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_run_py_stops_with_one_line_naming_the_variable(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RUN), "check"],
        env={"DEER_DATABASE_URL": "mysql://root:hunter2@db/deer"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "deer: invalid setting DEER_DATABASE_URL: must be a postgresql:// URL "
        "(deer runs on PostgreSQL only)"
    ]
    assert "hunter2" not in result.stderr + result.stdout
    assert not (tmp_path / "var").exists()


def test_settings_are_frozen() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]


def test_secrets_never_appear_in_repr_or_description() -> None:
    settings = load_settings(
        _env_file=None,
        database_url="postgresql://deer:pg-secret@db:5432/deer",
        redis_url="redis://:redis-secret@cache:6379/0",
        jwt_secret="jwt-secret-value",
        wechat_secret="wechat-app-secret",
    )
    shown = settings.described()
    text = repr(settings) + str(settings) + str(shown)
    for secret in ("pg-secret", "redis-secret", "jwt-secret-value", "wechat-app-secret"):
        assert secret not in text
    assert shown["DEER_DATABASE_URL"] == "postgresql://deer:***@db:5432/deer"
    assert shown["DEER_REDIS_URL"] == "redis://:***@cache:6379/0"
    assert shown["DEER_JWT_SECRET"] == "(set)"
    assert shown["DEER_WECHAT_SECRET"] == "(set)"


def test_mask_url_leaves_urls_without_password_alone() -> None:
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_env_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "DEER_PORT=9001\nDEER_CORS_ORIGINS=https://a.cn, https://b.cn/\n", encoding="utf-8"
    )
    settings = load_settings()
    assert settings.port == 9001
    assert settings.cors_origins == ("https://a.cn", "https://b.cn")


def test_generated_jwt_secret_is_kept_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    first = jwt_secret(settings)
    assert len(first) >= 48
    assert jwt_secret(settings) == first
    assert (tmp_path / "data" / "jwt-secret").stat().st_mode & 0o777 == 0o600
