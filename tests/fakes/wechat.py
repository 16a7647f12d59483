"""A local stand-in for WeChat's `auth.code2Session` (`GET /sns/jscode2session`).

It speaks the documented shapes: HTTP 200, a JSON body labelled `text/plain`,
`{"openid", "session_key", "unionid"?}` on success and `{"errcode", "errmsg"}` on failure, with
WeChat's errcodes and errmsgs (`rid` made deterministic). A code is registered by the test,
works once, and then answers 40163 like the real one.

Tests use the `wechat` fixture: `from tests.fakes.wechat import wechat_fixture  # noqa: F401`
in the test module, or `pytest_plugins = ["tests.fakes.wechat"]` in the root conftest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Final

import pytest
from aiohttp import web

PATH: Final = "/sns/jscode2session"

ERRMSG: Final = {
    -1: "system error",
    40002: "invalid grant_type",
    40013: "invalid appid",
    40029: "invalid code",
    40125: "invalid appsecret",
    40163: "code been used",
    40226: "code blocked",
    41002: "appid missing",
    41004: "appsecret missing",
    41008: "missing code",
    45011: "api minute-quota reach limit mustslower retry next minute",
}


@dataclass(frozen=True)
class Grant:
    """What a registered code stands for."""

    openid: str
    session_key: str
    unionid: str | None
    blocked: bool


@dataclass(frozen=True)
class Failure:
    """How to answer one request instead of (or before) the normal answer."""

    errcode: int | None = None
    status: int | None = None
    body: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    """One request as the fake saw it."""

    method: str
    path: str
    params: dict[str, str]


class FakeWechat:
    """The fake server: `.app` to serve, `.url` once it is served."""

    def __init__(self, appid: str = "wx0123456789abcdef", secret: str | None = None) -> None:
        self.appid = appid
        self.secret = secret if secret is not None else secrets.token_hex(16)
        self.url = ""
        self.requests: list[Received] = []
        self.app = web.Application()
        self.app.router.add_get(PATH, self._jscode2session)
        self._grants: dict[str, Grant] = {}
        self._used: set[str] = set()
        self._failures: deque[Failure] = deque()
        self._closing = asyncio.Event()

    def add_code(
        self,
        code: str,
        openid: str,
        unionid: str | None = None,
        *,
        session_key: str | None = None,
        blocked: bool = False,
    ) -> str:
        """Register a code as `wx.login()` would have issued it; return its session_key.

        `blocked=True` makes it a high-risk user's code (errcode 40226).
        """
        key = session_key if session_key is not None else secrets.token_urlsafe(18)
        self._grants[code] = Grant(openid, key, unionid, blocked)
        return key

    def fail_next(
        self,
        times: int = 1,
        *,
        errcode: int | None = None,
        status: int | None = None,
        body: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next `times` requests with an errcode, an HTTP status or a raw body.

        `delay` (seconds) alone holds the answer back, then answers normally; the fake's
        teardown cuts a pending delay short.
        """
        if (errcode, status, body) == (None, None, None) and delay <= 0:
            raise ValueError("say how to fail: errcode, status, body or delay")
        self._failures.extend(Failure(errcode, status, body, delay) for _ in range(times))

    def close(self) -> None:
        """Release requests still held back by a delay."""
        self._closing.set()

    async def _jscode2session(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        self.requests.append(Received(request.method, request.path, params))
        failure = self._failures.popleft() if self._failures else None
        if failure is not None and failure.delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), failure.delay)
        if failure is not None and failure.status is not None:
            return web.Response(status=failure.status, text="Internal Server Error")
        if failure is not None and failure.body is not None:
            return _text(failure.body)
        if failure is not None and failure.errcode is not None:
            return self._error(failure.errcode)
        return self._exchange(params)

    def _exchange(self, params: dict[str, str]) -> web.Response:
        checks = (
            ("appid" in params, 41002),
            ("secret" in params, 41004),
            ("js_code" in params, 41008),
            (params.get("appid") == self.appid, 40013),
            (params.get("secret") == self.secret, 40125),
            (params.get("grant_type") == "authorization_code", 40002),
        )
        for passed, errcode in checks:
            if not passed:
                return self._error(errcode)
        code = params["js_code"]
        grant = self._grants.get(code)
        if grant is None:
            return self._error(40029)
        if code in self._used:
            return self._error(40163)
        self._used.add(code)
        if grant.blocked:
            return self._error(40226)
        answer: dict[str, Any] = {"session_key": grant.session_key, "openid": grant.openid}
        if grant.unionid is not None:
            answer["unionid"] = grant.unionid
        return _text(json.dumps(answer))

    def _error(self, errcode: int) -> web.Response:
        rid = f"{len(self.requests):08x}-fa4e0000-00000000"
        errmsg = f"{ERRMSG.get(errcode, 'unknown error')}, rid: {rid}"
        return _text(json.dumps({"errcode": errcode, "errmsg": errmsg}))


def _text(body: str) -> web.Response:
    """WeChat labels its JSON `text/plain` (no charset)."""
    return web.Response(body=body.encode(), headers={"Content-Type": "text/plain"})


@pytest.fixture(name="wechat")
async def wechat_fixture(aiohttp_server: Any) -> AsyncIterator[FakeWechat]:
    """A FakeWechat served on a local port; `.url` is its base URL (`wechat_api_base`)."""
    fake = FakeWechat()
    # No access log: it would print the secret of the query string, muddling log assertions.
    server = await aiohttp_server(fake.app, access_log=None)
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.close()
