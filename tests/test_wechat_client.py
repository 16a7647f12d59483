"""The code2Session exchange against a local fake of WeChat's server, over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from config.settings import Settings
from deer.accounts import wechat as wechat_module
from deer.accounts.wechat import (
    RETRY_AFTER,
    WechatClient,
    WechatCodeInvalid,
    WechatNotConfigured,
    WechatRateLimited,
    WechatSession,
    WechatUnavailable,
    WechatUserBlocked,
)
from tests.fakes.wechat import FakeWechat, Received, wechat_fixture  # noqa: F401

CODE = "0a3Bx1Ga1Qe1iM0sWbHa1ZcPqQ2Bx1Gq"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def configured(settings: Settings, wechat: FakeWechat) -> Settings:
    return settings.with_values(
        wechat_appid=wechat.appid,
        wechat_secret=SecretStr(wechat.secret),
        wechat_api_base=wechat.url,
    )


@pytest.fixture
def client(configured: Settings, http: aiohttp.ClientSession) -> WechatClient:
    return WechatClient(configured, http)


def _sent(wechat: FakeWechat, code: str = CODE) -> Received:
    return Received(
        "GET",
        "/sns/jscode2session",
        {
            "appid": wechat.appid,
            "secret": wechat.secret,
            "js_code": code,
            "grant_type": "authorization_code",
        },
    )


async def test_exchange_with_unionid(client: WechatClient, wechat: FakeWechat) -> None:
    key = wechat.add_code(CODE, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "oHAUs6LSuwgHq-mlnFrffKXw3QYM")

    session = await client.code_to_session(CODE)

    assert session == WechatSession(
        openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
        session_key=key,
        unionid="oHAUs6LSuwgHq-mlnFrffKXw3QYM",
    )
    assert wechat.requests == [_sent(wechat)]


async def test_exchange_without_unionid(client: WechatClient, wechat: FakeWechat) -> None:
    key = wechat.add_code(CODE, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")

    session = await client.code_to_session(CODE)

    assert session == WechatSession("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", key, None)


async def test_api_base_with_trailing_slash(
    configured: Settings, http: aiohttp.ClientSession, wechat: FakeWechat
) -> None:
    key = wechat.add_code(CODE, "o-1")
    client = WechatClient(configured.with_values(wechat_api_base=wechat.url + "/"), http)

    assert await client.code_to_session(CODE) == WechatSession("o-1", key, None)
    assert wechat.requests == [_sent(wechat)]


async def test_code_works_once(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.add_code(CODE, "o-1")
    await client.code_to_session(CODE)

    with pytest.raises(WechatCodeInvalid) as caught:
        await client.code_to_session(CODE)

    assert caught.value.kind == "validation_error"
    assert caught.value.code == "wechat_code_invalid"
    assert caught.value.details == {
        "errcode": 40163,
        "errmsg": "code been used, rid: 00000002-fa4e0000-00000000",
    }
    assert wechat.requests == [_sent(wechat), _sent(wechat)]


async def test_unknown_code(client: WechatClient, wechat: FakeWechat) -> None:
    with pytest.raises(WechatCodeInvalid) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {
        "errcode": 40029,
        "errmsg": "invalid code, rid: 00000001-fa4e0000-00000000",
    }
    assert wechat.requests == [_sent(wechat)]


async def test_rate_limited(client: WechatClient, wechat: FakeWechat) -> None:
    key = wechat.add_code(CODE, "o-1")
    wechat.fail_next(errcode=45011)

    with pytest.raises(WechatRateLimited) as caught:
        await client.code_to_session(CODE)

    assert caught.value.kind == "rate_limited"
    assert caught.value.code == "wechat_rate_limited"
    assert caught.value.retry_after == RETRY_AFTER == 60
    assert caught.value.details == {
        "retry_after": 60,
        "errcode": 45011,
        "errmsg": "api minute-quota reach limit mustslower retry next minute, "
        "rid: 00000001-fa4e0000-00000000",
    }
    # WeChat did not look at the code: it still works once the limit has passed.
    assert await client.code_to_session(CODE) == WechatSession("o-1", key, None)


async def test_fail_next_counts_requests(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.add_code(CODE, "o-1")
    wechat.fail_next(2, errcode=45011)

    for _ in range(2):
        with pytest.raises(WechatRateLimited):
            await client.code_to_session(CODE)

    assert (await client.code_to_session(CODE)).openid == "o-1"
    assert len(wechat.requests) == 3


async def test_system_busy(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.add_code(CODE, "o-1")
    wechat.fail_next(errcode=-1)

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.kind == "unavailable"
    assert caught.value.code == "wechat_unavailable"
    assert caught.value.details == {
        "errcode": -1,
        "errmsg": "system error, rid: 00000001-fa4e0000-00000000",
    }


async def test_undocumented_errcode(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.fail_next(errcode=61004)

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {
        "errcode": 61004,
        "errmsg": "unknown error, rid: 00000001-fa4e0000-00000000",
    }


async def test_http_500(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.fail_next(status=500)

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {"http_status": 500}
    assert len(wechat.requests) == 1


@pytest.mark.parametrize("body", ["<html>502 Bad Gateway</html>", "[]", '"ok"', "", "{"])
async def test_answer_not_a_json_object(
    client: WechatClient, wechat: FakeWechat, body: str
) -> None:
    wechat.fail_next(body=body)

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {"reason": "malformed_answer"}


async def test_success_without_openid(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.fail_next(body='{"errcode": 0, "errmsg": "ok", "session_key": "k"}')

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {"reason": "malformed_answer"}


async def test_errcode_zero_with_success(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.fail_next(body='{"errcode": 0, "errmsg": "ok", "openid": "o-1", "session_key": "k"}')

    assert await client.code_to_session(CODE) == WechatSession("o-1", "k", None)


async def test_errcode_as_string(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.fail_next(body='{"errcode": "40029", "errmsg": "invalid code"}')

    with pytest.raises(WechatCodeInvalid) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {"errcode": 40029, "errmsg": "invalid code"}


async def test_timeout(
    client: WechatClient, wechat: FakeWechat, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wechat_module, "REQUEST_TIMEOUT", 0.05)
    wechat.add_code(CODE, "o-1")
    wechat.fail_next(delay=30)

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {"reason": "TimeoutError"}
    assert caught.value.__cause__ is None
    assert len(wechat.requests) == 1


async def test_connection_refused(
    configured: Settings, http: aiohttp.ClientSession, unused_tcp_port: int
) -> None:
    client = WechatClient(
        configured.with_values(wechat_api_base=f"http://127.0.0.1:{unused_tcp_port}"), http
    )

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details == {"reason": "ClientConnectorError"}
    assert caught.value.__cause__ is None


async def test_wrong_secret(
    configured: Settings, http: aiohttp.ClientSession, wechat: FakeWechat
) -> None:
    wechat.add_code(CODE, "o-1")
    client = WechatClient(configured.with_values(wechat_secret=SecretStr("not-the-secret")), http)

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.code == "wechat_unavailable"
    assert caught.value.details == {
        "errcode": 40125,
        "errmsg": "invalid appsecret, rid: 00000001-fa4e0000-00000000",
    }


async def test_wrong_appid(
    configured: Settings, http: aiohttp.ClientSession, wechat: FakeWechat
) -> None:
    client = WechatClient(configured.with_values(wechat_appid="wx-someone-else"), http)

    with pytest.raises(WechatUnavailable) as caught:
        await client.code_to_session(CODE)

    assert caught.value.details["errcode"] == 40013


async def test_blocked_user(client: WechatClient, wechat: FakeWechat) -> None:
    wechat.add_code(CODE, "o-1", blocked=True)

    with pytest.raises(WechatUserBlocked) as caught:
        await client.code_to_session(CODE)

    assert caught.value.kind == "forbidden"
    assert caught.value.code == "wechat_user_blocked"
    assert caught.value.details == {
        "errcode": 40226,
        "errmsg": "code blocked, rid: 00000001-fa4e0000-00000000",
    }


@pytest.mark.parametrize(
    "changes",
    [
        {"wechat_appid": None},
        {"wechat_appid": ""},
        {"wechat_secret": None},
        {"wechat_secret": SecretStr("")},
    ],
    ids=["no-appid", "empty-appid", "no-secret", "empty-secret"],
)
async def test_not_configured(
    configured: Settings,
    http: aiohttp.ClientSession,
    wechat: FakeWechat,
    changes: dict[str, Any],
) -> None:
    wechat.add_code(CODE, "o-1")
    client = WechatClient(configured.with_values(**changes), http)

    with pytest.raises(WechatNotConfigured) as caught:
        await client.code_to_session(CODE)

    assert caught.value.kind == "unavailable"
    assert caught.value.code == "wechat_not_configured"
    assert wechat.requests == []


@pytest.mark.parametrize(
    "code",
    ["", "x" * 129, "0a3B x1Ga", "0a3B\nx1Ga", "登录码", "0a3B\x00"],
    ids=["empty", "too-long", "space", "newline", "not-ascii", "nul"],
)
async def test_malformed_code_is_not_sent(
    client: WechatClient, wechat: FakeWechat, code: str
) -> None:
    with pytest.raises(WechatCodeInvalid) as caught:
        await client.code_to_session(code)

    assert caught.value.code == "wechat_code_invalid"
    assert wechat.requests == []


async def test_longest_code_is_sent(client: WechatClient, wechat: FakeWechat) -> None:
    code = "~" * 128
    wechat.add_code(code, "o-1")

    assert (await client.code_to_session(code)).openid == "o-1"
    assert wechat.requests == [_sent(wechat, code)]


async def test_logs_keep_secrets_out(
    client: WechatClient, wechat: FakeWechat, caplog: pytest.LogCaptureFixture
) -> None:
    key = wechat.add_code(CODE, "o-1")
    caplog.set_level(logging.DEBUG)

    session = await client.code_to_session(CODE)
    with pytest.raises(WechatCodeInvalid):
        await client.code_to_session(CODE)

    warnings = [r for r in caplog.records if r.name == "deer.accounts.wechat"]
    assert [(r.levelno, r.getMessage()) for r in warnings] == [
        (
            logging.WARNING,
            "WeChat code2Session refused code 0a3Bx1…: errcode 40163 "
            "(code been used, rid: 00000002-fa4e0000-00000000)",
        )
    ]
    assert wechat.secret not in caplog.text
    assert key not in caplog.text
    assert CODE not in caplog.text
    assert key not in repr(session)
