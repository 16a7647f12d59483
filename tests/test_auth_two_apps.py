"""Two app instances sharing PostgreSQL and Redis: every revocation takes effect at once in
both (as it would across processes)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from deer import keys
from deer.accounts.models import User
from deer.app import create_app
from tests.auth_helpers import PASSWORD, bearer, make_staff, sign_in_tokens


@pytest.fixture
async def pair(
    aiohttp_client: Any, settings: Settings
) -> tuple[TestClient[Any, Any], TestClient[Any, Any]]:
    first: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    second: TestClient[Any, Any] = await aiohttp_client(create_app(settings))
    await make_staff("li.na", ["sales"])
    return first, second


async def status_of_me(client: TestClient[Any, Any], token: str) -> tuple[int, str | None]:
    response = await client.get("/api/auth/me", headers=bearer(token))
    body = await response.json()
    return response.status, body.get("error", {}).get("code")


async def test_logout_on_one_is_seen_by_the_other(
    pair: tuple[TestClient[Any, Any], TestClient[Any, Any]],
) -> None:
    a, b = pair
    tokens = await sign_in_tokens(a, "li.na")
    assert await status_of_me(b, tokens["access_token"]) == (200, None)
    await a.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert await status_of_me(b, tokens["access_token"]) == (401, "token_revoked")
    refresh = await b.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status == 401


async def test_refresh_reuse_is_detected_across_instances(
    pair: tuple[TestClient[Any, Any], TestClient[Any, Any]],
) -> None:
    a, b = pair
    tokens = await sign_in_tokens(a, "li.na")
    rotated = await (
        await a.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).json()
    reused = await b.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert (await reused.json())["error"]["code"] == "refresh_reused"
    assert await status_of_me(a, rotated["access_token"]) == (401, "token_revoked")


async def test_password_change_on_one_ends_sessions_on_the_other(
    pair: tuple[TestClient[Any, Any], TestClient[Any, Any]],
) -> None:
    a, b = pair
    on_a = await sign_in_tokens(a, "li.na")
    on_b = await sign_in_tokens(b, "li.na")
    changed = await b.post(
        "/api/auth/password",
        headers=bearer(on_b["access_token"]),
        json={"current_password": PASSWORD, "new_password": "brand-new-pass-2"},
    )
    assert changed.status == 200
    assert await status_of_me(a, on_a["access_token"]) == (401, "token_revoked")


async def test_disabling_on_one_stops_the_token_on_the_other_at_once(
    pair: tuple[TestClient[Any, Any], TestClient[Any, Any]],
) -> None:
    a, b = pair
    tokens = await sign_in_tokens(a, "li.na")
    user = await User.get(username="li.na")
    await User.filter(id=user.id).update(status="disabled")
    await b.app[keys.SESSIONS].end_all_sessions("staff", user.id)  # what disabling does
    assert await status_of_me(a, tokens["access_token"]) == (401, "token_revoked")
    refresh = await a.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status in (401, 403)
    assert (await User.get(id=user.id)).session_generation == 1


async def test_a_lost_redis_generation_falls_back_to_the_database(
    pair: tuple[TestClient[Any, Any], TestClient[Any, Any]], settings: Settings
) -> None:
    a, b = pair
    tokens = await sign_in_tokens(a, "li.na")
    user = await User.get(username="li.na")
    await a.app[keys.SESSIONS].end_all_sessions("staff", user.id)
    await a.app[keys.REDIS].delete(f"{settings.redis_namespace}:auth:gen:staff:{user.id}")
    assert await status_of_me(b, tokens["access_token"]) == (401, "token_revoked")
