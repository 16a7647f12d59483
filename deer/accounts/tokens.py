"""JWT sessions: short access tokens, rotating refresh tokens in families, instant revocation.

Redis holds what makes revocation instant in every process:
- `auth:fam:<family>`: the refresh family (who, and the one refresh token id still valid),
  living as long as a refresh token; deleting it ends the family's access tokens at once;
- `auth:gen:<kind>:<id>`: the subject's session generation; a token of an older generation
  is refused (password change, disable, role change end every session);
- `auth:revoked:<jti>`: an access token revoked before its expiry (logout).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

import jwt
from redis.asyncio import Redis

from config.settings import Settings, jwt_secret
from deer.accounts.errors import RefreshReused, TokenExpired, TokenInvalid, TokenRevoked
from deer.cache import key

Kind = Literal["staff", "member"]
AUDIENCE: Final = "deer"
ISSUER: Final = "deer"
REQUIRED: Final = ["exp", "iat", "sub", "jti", "aud", "iss"]

# Rotate a family's refresh token: 1 rotated, 0 family gone, -1 reuse (family ended).
_ROTATE: Final = """
local current = redis.call('HGET', KEYS[1], 'current')
if not current then return 0 end
if current ~= ARGV[1] then redis.call('DEL', KEYS[1]) return -1 end
redis.call('HSET', KEYS[1], 'current', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
# The generation is the larger of Redis's and the database's (ARGV[1]), plus ARGV[2]: a stale
# fill never lowers it, and a bump always moves past both.
_GENERATION: Final = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local wanted = math.max(current, tonumber(ARGV[1])) + tonumber(ARGV[2])
if wanted ~= current then redis.call('SET', KEYS[1], wanted) end
return wanted
"""


@dataclass(frozen=True)
class Subject:
    """Who a session is for, as the database says now."""

    kind: Kind
    id: int
    roles: tuple[str, ...]
    department_id: int | None
    generation: int


@dataclass(frozen=True)
class Principal:
    """The caller of a request, as its access token says."""

    kind: Kind
    id: int
    roles: tuple[str, ...]
    department_id: int | None
    jti: str
    family: str
    expires_at: int

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    access_expires_in: int
    refresh_expires_in: int


GenerationLoader = Callable[[Kind, int], Awaitable[int]]


class Tokens:
    def __init__(self, settings: Settings, redis: Redis, generation_of: GenerationLoader) -> None:
        self.settings = settings
        self.redis = redis
        self._generation_of = generation_of
        self._algorithm = settings.jwt_algorithm
        if settings.jwt_algorithm == "RS256":
            assert settings.jwt_private_key_file and settings.jwt_public_key_file
            self._signing_key = settings.jwt_private_key_file.read_text(encoding="utf-8")
            self._verifying_key = settings.jwt_public_key_file.read_text(encoding="utf-8")
        else:
            self._signing_key = self._verifying_key = jwt_secret(settings)
        self._rotate = redis.register_script(_ROTATE)
        self._generation = redis.register_script(_GENERATION)

    def _key(self, *parts: str | int) -> str:
        return key(self.settings, "auth", *parts)

    # --- issuing -------------------------------------------------------------------------

    async def open_session(self, subject: Subject) -> TokenPair:
        """A new family for a fresh sign-in."""
        family = uuid.uuid4().hex
        refresh_jti = uuid.uuid4().hex
        generation = await self._current_generation(subject)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                self._key("fam", family),
                mapping={"kind": subject.kind, "id": subject.id, "current": refresh_jti},
            )
            pipe.expire(self._key("fam", family), self.settings.refresh_token_ttl)
            await pipe.execute()
        return self._sign_pair(subject, generation, family, refresh_jti)

    def _sign_pair(
        self, subject: Subject, generation: int, family: str, refresh_jti: str
    ) -> TokenPair:
        now = int(time.time())
        common = {
            "sub": str(subject.id),
            "kind": subject.kind,
            "fam": family,
            "gen": generation,
            "iat": now,
            "aud": AUDIENCE,
            "iss": ISSUER,
        }
        access = {
            **common,
            "typ": "access",
            "jti": uuid.uuid4().hex,
            "exp": now + self.settings.access_token_ttl,
            "roles": list(subject.roles),
            "dept": subject.department_id,
        }
        refresh = {
            **common,
            "typ": "refresh",
            "jti": refresh_jti,
            "exp": now + self.settings.refresh_token_ttl,
        }
        return TokenPair(
            access_token=self._encode(access),
            refresh_token=self._encode(refresh),
            access_expires_in=self.settings.access_token_ttl,
            refresh_expires_in=self.settings.refresh_token_ttl,
        )

    def _encode(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._signing_key, algorithm=self._algorithm)

    # --- checking ------------------------------------------------------------------------

    def _decode(self, token: str, typ: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self._algorithm],
                audience=AUDIENCE,
                issuer=ISSUER,
                leeway=self.settings.jwt_leeway,
                options={"require": REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except jwt.InvalidTokenError as exc:
            raise TokenInvalid(f"the token is not valid: {exc}") from None
        if claims.get("typ") != typ or claims.get("kind") not in ("staff", "member"):
            raise TokenInvalid(f"this is not an {typ} token")
        if not str(claims["sub"]).isdigit() or not isinstance(claims.get("gen"), int):
            raise TokenInvalid()
        return claims

    async def authenticate(self, token: str) -> Principal:
        """The principal of a valid, unrevoked access token (one Redis round trip)."""
        claims = self._decode(token, "access")
        kind: Kind = claims["kind"]
        subject_id = int(claims["sub"])
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self._key("gen", kind, subject_id))
            pipe.exists(self._key("revoked", claims["jti"]))
            pipe.exists(self._key("fam", claims["fam"]))
            cached_generation, revoked, family_alive = await pipe.execute()
        generation = (
            int(cached_generation)
            if cached_generation is not None
            else await self._load_generation(kind, subject_id)
        )
        if revoked or not family_alive or claims["gen"] != generation:
            raise TokenRevoked()
        roles = claims.get("roles")
        dept = claims.get("dept")
        if not isinstance(roles, list) or not (dept is None or isinstance(dept, int)):
            raise TokenInvalid()
        return Principal(
            kind=kind,
            id=subject_id,
            roles=tuple(str(role) for role in roles),
            department_id=dept,
            jti=str(claims["jti"]),
            family=str(claims["fam"]),
            expires_at=int(claims["exp"]),
        )

    async def refresh_claims(self, token: str) -> tuple[Kind, int, int]:
        """Check a refresh token without using it up: (kind, id, generation)."""
        claims = self._decode(token, "refresh")
        return claims["kind"], int(claims["sub"]), int(claims["gen"])

    async def rotate(self, token: str, subject: Subject) -> TokenPair:
        """Trade a refresh token for a new pair in the same family; a reused one ends it."""
        claims = self._decode(token, "refresh")
        generation = await self._current_generation(subject)
        if claims["gen"] != generation:
            await self.redis.delete(self._key("fam", claims["fam"]))
            raise TokenRevoked()
        new_jti = uuid.uuid4().hex
        outcome = await self._rotate(
            keys=[self._key("fam", claims["fam"])],
            args=[claims["jti"], new_jti, self.settings.refresh_token_ttl],
        )
        if outcome == -1:
            raise RefreshReused()
        if outcome != 1:
            raise TokenRevoked()
        return self._sign_pair(subject, generation, claims["fam"], new_jti)

    # --- ending --------------------------------------------------------------------------

    async def logout(self, principal: Principal) -> None:
        """End this sign-in: its access token and its whole refresh family, at once."""
        remaining = max(1, principal.expires_at - int(time.time()) + self.settings.jwt_leeway)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key("revoked", principal.jti), 1, ex=remaining)
            pipe.delete(self._key("fam", principal.family))
            await pipe.execute()

    async def end_family(self, token: str) -> None:
        """End the family of a refresh token (logout with the refresh token only)."""
        claims = self._decode(token, "refresh")
        await self.redis.delete(self._key("fam", claims["fam"]))

    async def end_all_sessions(self, kind: Kind, subject_id: int, stored: int) -> int:
        """Refuse every token issued so far, in every process at once.

        Redis moves first (the effect is immediate); the caller then stores the returned
        generation in the database (`GREATEST`), which survives a loss of Redis.
        """
        return await self._move_generation(kind, subject_id, stored, 1)

    async def _current_generation(self, subject: Subject) -> int:
        return await self._move_generation(subject.kind, subject.id, subject.generation, 0)

    async def _load_generation(self, kind: Kind, subject_id: int) -> int:
        stored = await self._generation_of(kind, subject_id)
        return await self._move_generation(kind, subject_id, stored, 0)

    async def _move_generation(self, kind: Kind, subject_id: int, stored: int, by: int) -> int:
        result = await self._generation(
            keys=[self._key("gen", kind, subject_id)], args=[stored, by]
        )
        return int(result)
