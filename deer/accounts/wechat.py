"""Sign-in from the WeChat mini-program: trade a `wx.login()` code for the user's openid.

WeChat's `auth.code2Session` (`GET /sns/jscode2session`) answers HTTP 200 with a JSON body,
often labelled `text/plain`: `{"openid", "session_key", "unionid"?}` on success,
`{"errcode", "errmsg"}` on failure. A code is valid for five minutes and only once, so a failed
exchange is never retried here: the mini-program calls `wx.login()` again.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from config.settings import Settings
from deer.errors import DeerError, Forbidden, RateLimited, Unavailable, ValidationFailed

log = logging.getLogger(__name__)

PATH: Final = "/sns/jscode2session"
REQUEST_TIMEOUT: Final = 5.0  # seconds for the whole exchange, body included
RETRY_AFTER: Final = 60  # WeChat's quota is per minute (45011: "retry next minute")
CODE_SHOWN: Final = 6  # characters of a code that may appear in a log line
_GOOD_CODE: Final = re.compile(r"[\x21-\x7e]{1,128}")  # visible ASCII, no spaces

# WeChat's errcodes of code2Session that mean something other than "try again later".
CODE_INVALID: Final = 40029
CODE_USED: Final = 40163
RATE_LIMITED: Final = 45011
USER_BLOCKED: Final = 40226


@dataclass(frozen=True)
class WechatSession:
    """Who signed in: the openid for this mini-program, the unionid across the open platform."""

    openid: str
    session_key: str = field(repr=False)  # decrypts the user's data: never shown or logged
    unionid: str | None


class WechatCodeInvalid(ValidationFailed):
    code = "wechat_code_invalid"
    default_message = "the WeChat login code is invalid or was already used: call wx.login() again"


class WechatRateLimited(RateLimited):
    code = "wechat_rate_limited"
    default_message = "WeChat sign-in is busy with too many requests: try again in a minute"

    def __init__(
        self, message: str | None = None, *, retry_after: int = RETRY_AFTER, **details: Any
    ) -> None:
        super().__init__(message, retry_after=retry_after, **details)


class WechatUserBlocked(Forbidden):
    code = "wechat_user_blocked"
    default_message = "WeChat has blocked sign-in for this user as high-risk"


class WechatUnavailable(Unavailable):
    code = "wechat_unavailable"
    default_message = "WeChat sign-in is unavailable right now: try again shortly"


class WechatNotConfigured(Unavailable):
    code = "wechat_not_configured"
    default_message = "WeChat sign-in is not set up on this server"


class WechatClient:
    """The calls to WeChat's server API that sign-in needs."""

    def __init__(self, settings: Settings, http: aiohttp.ClientSession) -> None:
        self._settings = settings
        self._http = http

    async def code_to_session(self, code: str) -> WechatSession:
        """Exchange a `wx.login()` code for the user's identity (the code is then spent)."""
        appid = self._settings.wechat_appid
        secret = self._settings.wechat_secret
        if not appid or secret is None or not secret.get_secret_value():
            raise WechatNotConfigured()
        if not _GOOD_CODE.fullmatch(code):
            raise WechatCodeInvalid("the WeChat login code is malformed: call wx.login() again")
        params = {
            "appid": appid,
            "secret": secret.get_secret_value(),
            "js_code": code,
            "grant_type": "authorization_code",
        }
        url = self._settings.wechat_api_base.rstrip("/") + PATH
        try:
            async with self._http.get(
                url, params=params, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
            ) as response:
                status = response.status
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Never chain or print `exc`: some aiohttp errors carry the URL, secret included.
            log.warning("WeChat code2Session failed for code %s: %s", _shown(code), _name(exc))
            raise WechatUnavailable(reason=_name(exc)) from None
        if status != 200:
            log.warning("WeChat code2Session answered HTTP %d for code %s", status, _shown(code))
            raise WechatUnavailable(http_status=status)
        return _session_of(_parse(body, code), code)


def _parse(body: bytes, code: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:  # not JSON, or not UTF-8
        data = None
    if not isinstance(data, dict):
        log.warning(
            "WeChat code2Session answered something other than a JSON object for code %s",
            _shown(code),
        )
        raise WechatUnavailable(reason="malformed_answer")
    return data


def _session_of(data: dict[str, Any], code: str) -> WechatSession:
    errcode = _errcode(data.get("errcode", 0))
    if errcode != 0:
        errmsg = str(data.get("errmsg", ""))
        log.warning(
            "WeChat code2Session refused code %s: errcode %s (%s)",
            _shown(code),
            errcode,
            errmsg,
            extra={"wechat_errcode": errcode},
        )
        raise _error_of(errcode, errmsg)
    openid, session_key, unionid = (data.get(k) for k in ("openid", "session_key", "unionid"))
    if not (isinstance(openid, str) and openid and isinstance(session_key, str) and session_key):
        log.warning("WeChat code2Session answered without an openid for code %s", _shown(code))
        raise WechatUnavailable(reason="malformed_answer")
    return WechatSession(
        openid=openid,
        session_key=session_key,
        unionid=unionid if isinstance(unionid, str) and unionid else None,
    )


def _errcode(value: Any) -> int | None:
    """WeChat's errcode as a number (its docs show it as a string in places); None if neither."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _error_of(errcode: int | None, errmsg: str) -> DeerError:
    details: dict[str, Any] = {"errcode": errcode, "errmsg": errmsg}
    if errcode in (CODE_INVALID, CODE_USED):
        return WechatCodeInvalid(**details)
    if errcode == RATE_LIMITED:
        return WechatRateLimited(**details)
    if errcode == USER_BLOCKED:
        return WechatUserBlocked(**details)
    # -1 (busy), 40013/40125 (our appid or secret is wrong) and anything undocumented.
    return WechatUnavailable(**details)


def _shown(code: str) -> str:
    return code[:CODE_SHOWN] + "…" if len(code) > CODE_SHOWN else code


def _name(exc: BaseException) -> str:
    return type(exc).__name__
