"""WeChat mini-program sign-in end to end, against a local fake of WeChat's server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from config.settings import Settings
from deer.accounts.models import AuditLog, Member
from deer.app import create_app
from tests.auth_helpers import bearer
from tests.fakes.wechat import FakeWechat, wechat_fixture  # noqa: F401 - the fixture


@pytest.fixture
async def shop(aiohttp_client: Any, settings: Settings, wechat: FakeWechat) -> TestClient[Any, Any]:
    configured = settings.with_values(
        wechat_appid=wechat.appid,
        wechat_secret=SecretStr(wechat.secret),
        wechat_api_base=wechat.url,
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(configured))
    return client


async def wechat_login(client: TestClient[Any, Any], code: str) -> Any:
    return await client.post("/api/auth/wechat", json={"code": code})


async def test_first_sign_in_creates_the_member_then_finds_it(
    shop: TestClient[Any, Any], wechat: FakeWechat
) -> None:
    wechat.add_code("code-1", "openid-abc", unionid="union-1")
    wechat.add_code("code-2", "openid-abc", unionid="union-1")
    first = await wechat_login(shop, "code-1")
    assert first.status == 200
    body = await first.json()
    assert body["user"]["kind"] == "member"
    member = await Member.get(wechat_openid="openid-abc")
    assert member.wechat_unionid == "union-1"
    assert member.name == "微信用户"
    second = await (await wechat_login(shop, "code-2")).json()
    assert second["user"]["id"] == body["user"]["id"] == member.id
    assert await Member.all().count() == 1
    me = await shop.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert (await me.json())["id"] == member.id
    assert await AuditLog.filter(action="auth.wechat", result="ok").count() == 2
    sent = wechat.requests[0].params
    assert sent["appid"] == wechat.appid
    assert sent["js_code"] == "code-1"
    assert sent["grant_type"] == "authorization_code"


async def test_the_same_new_user_twice_at_once_makes_one_member(
    shop: TestClient[Any, Any], wechat: FakeWechat
) -> None:
    wechat.add_code("code-1", "openid-new")
    wechat.add_code("code-2", "openid-new")
    responses = await asyncio.gather(wechat_login(shop, "code-1"), wechat_login(shop, "code-2"))
    assert [r.status for r in responses] == [200, 200]
    assert await Member.filter(wechat_openid="openid-new").count() == 1


@pytest.mark.parametrize(
    ("setup", "status", "code"),
    [
        ("unknown", 422, "wechat_code_invalid"),
        ("used", 422, "wechat_code_invalid"),
        ("rate", 429, "wechat_rate_limited"),
        ("blocked", 403, "wechat_user_blocked"),
        ("busy", 503, "wechat_unavailable"),
    ],
)
async def test_wechat_errors_become_clear_answers(
    shop: TestClient[Any, Any], wechat: FakeWechat, setup: str, status: int, code: str
) -> None:
    if setup == "used":
        wechat.add_code("code-1", "openid-abc")
        assert (await wechat_login(shop, "code-1")).status == 200
        await Member.all().delete()
    elif setup == "rate":
        wechat.add_code("code-1", "openid-abc")
        wechat.fail_next(errcode=45011)
    elif setup == "blocked":
        wechat.add_code("code-1", "openid-abc", blocked=True)
    elif setup == "busy":
        wechat.add_code("code-1", "openid-abc")
        wechat.fail_next(errcode=-1)
    response = await wechat_login(shop, "code-1")
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"] == code
    assert wechat.secret not in str(error)
    if status == 429:
        assert response.headers["Retry-After"] == "60"
    assert await Member.all().count() == 0


async def test_not_configured(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/auth/wechat", json={"code": "code-1"})
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "wechat_not_configured"


async def test_bad_body(shop: TestClient[Any, Any], wechat: FakeWechat) -> None:
    response = await shop.post("/api/auth/wechat", json={"code": ""})
    assert response.status == 422
    assert wechat.requests == []
