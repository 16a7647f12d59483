"""Sign-in endpoints: register, login, refresh, logout, me, password, WeChat."""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from deer import keys
from deer.accounts.audit import Origin
from deer.accounts.models import Member, User
from deer.accounts.sessions import SignedIn
from deer.accounts.tokens import Principal
from deer.accounts.wechat import WechatClient
from deer.web.api import Api
from deer.web.auth import principal_of
from deer.web.middlewares import REQUEST_ID_KEY

api = Api(tags=["auth"])

Mobile = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^1[3-9][0-9]{9}$")]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    mobile: Mobile = Field(description="a mainland China mobile number, 11 digits")
    password: Password = Field(description="at least 8 characters, not only digits")
    name: Name


class LoginIn(Strict):
    account: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
    password: Password
    kind: Literal["staff", "member"] | None = Field(
        default=None, description="which kind of account; by default staff first, then member"
    )


class RefreshIn(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class PasswordIn(Strict):
    current_password: Password
    new_password: Password


class WechatIn(Strict):
    code: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="the code `wx.login()` gave the mini-program"
    )


class MeOut(BaseModel):
    kind: Literal["staff", "member"]
    id: int
    name: str
    roles: list[str]
    mobile: str | None
    department_id: int | None = None
    username: str | None = None
    email: str | None = None
    position_id: int | None = None
    avatar: str | None = None
    condition: str | None = None
    level: int | None = None
    points: int | None = None


class TokensOut(BaseModel):
    token_type: Literal["Bearer"] = "Bearer"
    access_token: str
    expires_in: int = Field(description="seconds the access token lives")
    refresh_token: str
    refresh_expires_in: int = Field(description="seconds the refresh token lives")
    user: MeOut


def origin_of(request: web.Request) -> Origin:
    return Origin(
        ip=request.remote or "",
        user_agent=request.headers.get("User-Agent", "")[:256],
        request_id=request.get(REQUEST_ID_KEY, ""),
    )


async def describe(kind: str, subject_id: int, roles: tuple[str, ...]) -> MeOut:
    if kind == "staff":
        user = await User.get(id=subject_id)
        return MeOut(
            kind="staff",
            id=user.id,
            name=user.name,
            roles=list(roles),
            mobile=user.mobile,
            department_id=user.department_id,
            username=user.username,
            email=user.email,
            position_id=user.position_id,
        )
    member = await Member.get(id=subject_id)
    return MeOut(
        kind="member",
        id=member.id,
        name=member.name,
        roles=list(roles),
        mobile=member.mobile,
        avatar=member.avatar,
        condition=str(member.condition),
        level=member.level,
        points=member.points,
    )


async def tokens_out(signed: SignedIn) -> TokensOut:
    subject = signed.subject
    return TokensOut(
        access_token=signed.tokens.access_token,
        expires_in=signed.tokens.access_expires_in,
        refresh_token=signed.tokens.refresh_token,
        refresh_expires_in=signed.tokens.refresh_expires_in,
        user=await describe(subject.kind, subject.id, subject.roles),
    )


SIGN_IN_ERRORS = (401, 403, 429)


@api.post(
    "/api/auth/register",
    summary="Register a member (shopper) with mobile and password; signs them in",
    body=RegisterIn,
    response=TokensOut,
    status=201,
    errors=(409, 429),
    public=True,
)
async def register(request: web.Request, body: RegisterIn) -> TokensOut:
    sessions = request.app[keys.SESSIONS]
    signed = await sessions.register(body.mobile, body.password, body.name, origin_of(request))
    return await tokens_out(signed)


@api.post(
    "/api/auth/login",
    summary="Sign in with username or mobile and password (staff or member)",
    body=LoginIn,
    response=TokensOut,
    errors=SIGN_IN_ERRORS,
    public=True,
)
async def login(request: web.Request, body: LoginIn) -> TokensOut:
    sessions = request.app[keys.SESSIONS]
    signed = await sessions.login(body.account, body.password, body.kind, origin_of(request))
    return await tokens_out(signed)


@api.post(
    "/api/auth/refresh",
    summary="Trade a refresh token for a new pair (the old one is used up)",
    body=RefreshIn,
    response=TokensOut,
    errors=(401, 403),
    public=True,
)
async def refresh(request: web.Request, body: RefreshIn) -> TokensOut:
    signed = await request.app[keys.SESSIONS].refresh(body.refresh_token)
    return await tokens_out(signed)


@api.post(
    "/api/auth/wechat",
    summary="Sign in from the WeChat mini-program with a wx.login() code",
    body=WechatIn,
    response=TokensOut,
    errors=(403, 429, 503),
    public=True,
)
async def wechat(request: web.Request, body: WechatIn) -> TokensOut:
    client = WechatClient(request.app[keys.SETTINGS], request.app[keys.HTTP])
    signed = await request.app[keys.SESSIONS].wechat(client, body.code, origin_of(request))
    return await tokens_out(signed)


@api.post("/api/auth/logout", summary="End this sign-in at once", status=204)
async def logout(request: web.Request) -> web.Response:
    await request.app[keys.SESSIONS].logout(principal_of(request), origin_of(request))
    return web.Response(status=204)


@api.get("/api/auth/me", summary="Who is signed in", response=MeOut)
async def me(request: web.Request) -> MeOut:
    principal: Principal = principal_of(request)
    return await describe(principal.kind, principal.id, principal.roles)


@api.post(
    "/api/auth/password",
    summary="Change your password; ends every other session and returns a new one",
    body=PasswordIn,
    response=TokensOut,
)
async def change_password(request: web.Request, body: PasswordIn) -> TokensOut:
    signed = await request.app[keys.SESSIONS].change_password(
        principal_of(request), body.current_password, body.new_password, origin_of(request)
    )
    return await tokens_out(signed)
