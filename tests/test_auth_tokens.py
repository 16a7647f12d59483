"""Every bad token is refused with 401 and the code that says why."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from config.settings import Settings
from deer.app import create_app
from tests.auth_helpers import bearer, make_staff, sign_in_tokens


@pytest.fixture
async def boss(client: TestClient[Any, Any]) -> dict[str, Any]:
    await make_staff("boss", ["admin"])
    return await sign_in_tokens(client, "boss")


async def me(client: TestClient[Any, Any], token: str) -> tuple[int, dict[str, Any]]:
    response = await client.get("/api/auth/me", headers=bearer(token))
    body: dict[str, Any] = await response.json()
    return response.status, body


def claims_of(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def resign(claims: dict[str, Any], key: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def test_a_valid_token_signs_in(client: TestClient[Any, Any], boss: dict[str, Any]) -> None:
    status, body = await me(client, boss["access_token"])
    assert status == 200
    assert body["username"] == "boss"
    assert body["roles"] == ["admin"]
    claims = claims_of(boss["access_token"])
    assert {"sub", "kind", "roles", "dept", "jti", "iat", "exp"} <= set(claims)
    assert claims["kind"] == "staff"
    assert claims["exp"] - claims["iat"] == 15 * 60


async def test_no_token(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/auth/me")
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    other_scheme = await client.get("/api/auth/me", headers={"Authorization": "Basic Ym9zczp4"})
    assert other_scheme.status == 401


async def test_malformed_token(client: TestClient[Any, Any]) -> None:
    status, body = await me(client, "not.a.jwt")
    assert status == 401
    assert body["error"]["code"] == "token_invalid"


async def test_wrongly_signed_token(client: TestClient[Any, Any], boss: dict[str, Any]) -> None:
    forged = resign(claims_of(boss["access_token"]), "another-secret-of-32-bytes-or-more!!")
    status, body = await me(client, forged)
    assert (status, body["error"]["code"]) == (401, "token_invalid")


async def test_alg_none_is_refused(client: TestClient[Any, Any], boss: dict[str, Any]) -> None:
    claims = claims_of(boss["access_token"])
    claims["roles"] = ["admin"]
    unsigned = jwt.encode(claims, None, algorithm="none")
    status, body = await me(client, unsigned)
    assert (status, body["error"]["code"]) == (401, "token_invalid")


async def test_expired_token(
    client: TestClient[Any, Any], boss: dict[str, Any], settings: Settings
) -> None:
    claims = claims_of(boss["access_token"])
    claims["exp"] = int(time.time()) - settings.jwt_leeway - 5
    assert settings.jwt_secret is not None
    expired = resign(claims, settings.jwt_secret.get_secret_value())
    status, body = await me(client, expired)
    assert (status, body["error"]["code"]) == (401, "token_expired")


async def test_small_clock_skew_is_tolerated(
    client: TestClient[Any, Any], boss: dict[str, Any], settings: Settings
) -> None:
    claims = claims_of(boss["access_token"])
    claims["exp"] = int(time.time()) - 2  # within the leeway
    assert settings.jwt_secret is not None
    status, _ = await me(client, resign(claims, settings.jwt_secret.get_secret_value()))
    assert status == 200


async def test_tampered_claims_are_refused(
    client: TestClient[Any, Any], boss: dict[str, Any]
) -> None:
    header, _payload, signature = boss["access_token"].split(".")
    other = claims_of(boss["access_token"]) | {"sub": "999"}
    _, forged_payload, _ = resign(other, "x" * 40).split(".")
    status, body = await me(client, f"{header}.{forged_payload}.{signature}")
    assert (status, body["error"]["code"]) == (401, "token_invalid")


async def test_a_refresh_token_is_not_an_access_token(
    client: TestClient[Any, Any], boss: dict[str, Any]
) -> None:
    status, body = await me(client, boss["refresh_token"])
    assert (status, body["error"]["code"]) == (401, "token_invalid")


async def test_revoked_token(client: TestClient[Any, Any], boss: dict[str, Any]) -> None:
    response = await client.post("/api/auth/logout", headers=bearer(boss["access_token"]))
    assert response.status == 204
    status, body = await me(client, boss["access_token"])
    assert (status, body["error"]["code"]) == (401, "token_revoked")


async def test_reused_refresh_token_ends_the_family(
    client: TestClient[Any, Any], boss: dict[str, Any]
) -> None:
    first = await client.post("/api/auth/refresh", json={"refresh_token": boss["refresh_token"]})
    assert first.status == 200
    rotated = await first.json()
    reused = await client.post("/api/auth/refresh", json={"refresh_token": boss["refresh_token"]})
    assert reused.status == 401
    assert (await reused.json())["error"]["code"] == "refresh_reused"
    # The thief's and the owner's tokens of that family are all dead now.
    status, body = await me(client, rotated["access_token"])
    assert (status, body["error"]["code"]) == (401, "token_revoked")
    again = await client.post("/api/auth/refresh", json={"refresh_token": rotated["refresh_token"]})
    assert again.status == 401
    assert (await again.json())["error"]["code"] == "token_revoked"


def hmac_token(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 token made by hand (pyjwt refuses to key HMAC with a PEM, as it should)."""
    import base64
    import hashlib
    import hmac
    import json

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = ".".join(
        part(json.dumps(value).encode()) for value in ({"alg": "HS256", "typ": "JWT"}, claims)
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


def write_key_pair(folder: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = folder / "jwt.key"
    public = folder / "jwt.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


async def test_rs256_key_pair(aiohttp_client: Any, settings: Settings, tmp_path: Path) -> None:
    private, public = write_key_pair(tmp_path)
    rs_settings = settings.with_values(
        jwt_algorithm="RS256", jwt_private_key_file=private, jwt_public_key_file=public
    )
    client: TestClient[Any, Any] = await aiohttp_client(create_app(rs_settings))
    await make_staff("boss", ["admin"])
    tokens = await sign_in_tokens(client, "boss")
    assert jwt.get_unverified_header(tokens["access_token"])["alg"] == "RS256"
    assert (await me(client, tokens["access_token"]))[0] == 200
    # Algorithm confusion: an HS256 token keyed with the public key is refused.
    confused = hmac_token(claims_of(tokens["access_token"]), public.read_bytes())
    status, body = await me(client, confused)
    assert (status, body["error"]["code"]) == (401, "token_invalid")


def test_route_patterns_for_policies() -> None:
    from deer.access.policy import route_pattern

    assert route_pattern("/api/admin/users/{id}") == "/api/admin/users/:id"
    assert route_pattern("/api/x/{id:\\d+}/y/{name}") == "/api/x/:id/y/:name"
    assert route_pattern("/healthz") == "/healthz"
