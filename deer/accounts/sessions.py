"""Signing in and out: passwords, registration, refresh, WeChat, ending sessions.

Service code: it takes the tokens, the limiter and where the request came from, and knows
nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Final

from tortoise.exceptions import IntegrityError

from config.settings import Settings
from deer.accounts import audit
from deer.accounts.audit import Origin
from deer.accounts.errors import (
    AccountDisabled,
    BadCredentials,
    MobileTaken,
    TokenRevoked,
    WrongPassword,
)
from deer.accounts.models import Member, MemberCondition, User, UserStatus
from deer.accounts.passwords import hash_password, verify_password
from deer.accounts.tokens import Kind, Principal, Subject, TokenPair, Tokens
from deer.accounts.wechat import WechatClient
from deer.cache import key
from deer.ratelimit import Limit, Limiter

MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")  # [0-9], not \d: \d takes any script's digits
MEMBER_ROLES: Final = ("member",)
BLOCKED_MEMBER_CONDITIONS: Final = (MemberCondition.FROZEN,)


@functools.cache
def _dummy_hash() -> str:
    """Verified against unknown accounts so a wrong account takes as long as a wrong password."""
    return hash_password("not-a-real-password-0")


@dataclass(frozen=True)
class SignedIn:
    tokens: TokenPair
    subject: Subject


class Sessions:
    def __init__(self, settings: Settings, tokens: Tokens, limiter: Limiter) -> None:
        self.settings = settings
        self.tokens = tokens
        self.limiter = limiter

    # --- limits --------------------------------------------------------------------------

    def _limits(self, action: str, account: str, ip: str) -> tuple[Limit, Limit]:
        s = self.settings
        return (
            Limit(
                key(s, "rl", action, "account", account.lower()),
                s.login_failures_per_account,
                s.login_window,
                "too many failed attempts for this account, try again later",
            ),
            Limit(
                key(s, "rl", action, "ip", ip or "-"),
                s.login_failures_per_ip,
                s.login_window,
                "too many failed attempts from this address, try again later",
            ),
        )

    # --- password sign-in ----------------------------------------------------------------

    async def login(
        self, account: str, password: str, kind: Kind | None, origin: Origin
    ) -> SignedIn:
        limits = self._limits("login", account, origin.ip)
        await self.limiter.take(*limits)  # counted before the check: no race lets more through
        found = await _find_account(account, kind)
        password_hash = found.password_hash if found is not None else None
        valid = await asyncio.to_thread(verify_password, password_hash or _dummy_hash(), password)
        if found is None or not valid:
            await audit.record(
                "auth.login", "failed", origin, actor_kind="anonymous", account=account[:64]
            )
            raise BadCredentials()
        await self.limiter.give_back(*limits)  # only failures count
        subject = await _subject_of(found)
        await _touch_login(found, origin)
        await audit.record(
            "auth.login",
            "ok",
            origin,
            actor_kind=subject.kind,
            actor_id=subject.id,
            actor_name=found.name,
        )
        return SignedIn(await self.tokens.open_session(subject), subject)

    async def register(self, mobile: str, password: str, name: str, origin: Origin) -> SignedIn:
        limits = self._limits("register", mobile, origin.ip)
        await self.limiter.take(*limits)
        password_hash = await asyncio.to_thread(hash_password, password)
        try:
            member = await Member.create(mobile=mobile, name=name, password_hash=password_hash)
        except IntegrityError:
            await audit.record(
                "auth.register", "failed", origin, actor_kind="anonymous", reason="mobile_taken"
            )
            raise MobileTaken() from None
        await self.limiter.give_back(limits[0])  # the address still counts every attempt
        subject = await _subject_of(member)
        await _touch_login(member, origin)
        await audit.record(
            "auth.register",
            "ok",
            origin,
            actor_kind="member",
            actor_id=member.id,
            actor_name=member.name,
        )
        return SignedIn(await self.tokens.open_session(subject), subject)

    async def wechat(self, client: WechatClient, code: str, origin: Origin) -> SignedIn:
        """Mini-program sign-in: WeChat vouches for the openid; first sign-in makes a member."""
        session = await client.code_to_session(code)
        member = await Member.get_or_none(wechat_openid=session.openid)
        if member is None:
            try:
                member = await Member.create(
                    name="微信用户", wechat_openid=session.openid, wechat_unionid=session.unionid
                )
            except IntegrityError:  # the same new user signing in twice at once
                member = await Member.get(wechat_openid=session.openid)
        elif session.unionid and member.wechat_unionid != session.unionid:
            member.wechat_unionid = session.unionid
            await member.save(update_fields=["wechat_unionid"])
        subject = await _subject_of(member)
        await _touch_login(member, origin)
        await audit.record(
            "auth.wechat",
            "ok",
            origin,
            actor_kind="member",
            actor_id=member.id,
            actor_name=member.name,
        )
        return SignedIn(await self.tokens.open_session(subject), subject)

    # --- refresh and sign-out ------------------------------------------------------------

    async def refresh(self, refresh_token: str) -> SignedIn:
        kind, subject_id, _ = await self.tokens.refresh_claims(refresh_token)
        found = await _load(kind, subject_id)
        if found is None:
            raise TokenRevoked()
        subject = await _subject_of(found)  # current roles; refuses disabled accounts
        return SignedIn(await self.tokens.rotate(refresh_token, subject), subject)

    async def logout(self, principal: Principal, origin: Origin) -> None:
        await self.tokens.logout(principal)
        await audit.record(
            "auth.logout", "ok", origin, actor_kind=principal.kind, actor_id=principal.id
        )

    async def change_password(
        self, principal: Principal, current: str, new: str, origin: Origin
    ) -> SignedIn:
        found = await _load(principal.kind, principal.id)
        if found is None:
            raise TokenRevoked()
        valid = found.password_hash is not None and await asyncio.to_thread(
            verify_password, found.password_hash, current
        )
        if not valid:
            await audit.record(
                "auth.password", "failed", origin, actor_kind=principal.kind, actor_id=principal.id
            )
            raise WrongPassword()
        found.password_hash = await asyncio.to_thread(hash_password, new)
        await found.save(update_fields=["password_hash"])
        await self.end_all_sessions(principal.kind, principal.id)
        await audit.record(
            "auth.password", "ok", origin, actor_kind=principal.kind, actor_id=principal.id
        )
        fresh = await _load(principal.kind, principal.id)
        assert fresh is not None
        subject = await _subject_of(fresh)
        return SignedIn(await self.tokens.open_session(subject), subject)

    async def end_all_sessions(self, kind: Kind, subject_id: int) -> None:
        """Every token of this user stops working now, in every process."""
        generation = await self.tokens.end_all_sessions(
            kind, subject_id, await stored_generation(kind, subject_id)
        )
        model = User if kind == "staff" else Member
        await model.filter(id=subject_id, session_generation__lt=generation).update(
            session_generation=generation
        )


async def stored_generation(kind: Kind, subject_id: int) -> int:
    """The generation the database keeps (the fallback when Redis has lost it)."""
    found = await _load(kind, subject_id)
    return found.session_generation if found is not None else 0


async def _find_account(account: str, kind: Kind | None) -> User | Member | None:
    account = account.strip()
    if kind in (None, "staff"):
        user = await User.get_or_none(username=account)
        if user is None and MOBILE.fullmatch(account):
            user = await User.get_or_none(mobile=account)
        if user is not None or kind == "staff":
            return user
    if MOBILE.fullmatch(account):
        return await Member.get_or_none(mobile=account)
    return None


async def _load(kind: Kind, subject_id: int) -> User | Member | None:
    if kind == "staff":
        return await User.get_or_none(id=subject_id)
    return await Member.get_or_none(id=subject_id)


async def _subject_of(found: User | Member) -> Subject:
    if isinstance(found, User):
        if found.status != UserStatus.ACTIVE:
            raise AccountDisabled()
        roles = tuple(sorted(role.code for role in await found.roles.all()))
        return Subject("staff", found.id, roles, found.department_id, found.session_generation)
    if found.condition in BLOCKED_MEMBER_CONDITIONS:
        raise AccountDisabled("this member account is frozen")
    return Subject("member", found.id, MEMBER_ROLES, None, found.session_generation)


async def _touch_login(found: User | Member, origin: Origin) -> None:
    model = type(found)
    await model.filter(id=found.id).update(
        last_login_at=dt.datetime.now(dt.UTC), last_login_ip=origin.ip[:45] or None
    )
