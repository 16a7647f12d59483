"""Sign-in and registration limits hold under concurrency: no more than the limit pass."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient

from config.settings import Settings
from deer.accounts.models import Member
from tests.auth_helpers import PASSWORD, make_staff


async def attempt(client: TestClient[Any, Any], account: str, password: str) -> Any:
    return await client.post("/api/auth/login", json={"account": account, "password": password})


async def test_fifty_concurrent_wrong_passwords_on_one_account(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    assert settings.login_failures_per_account == 5
    await make_staff("li.na", ["sales"])
    responses = await asyncio.gather(*(attempt(client, "li.na", "wrong-pass") for _ in range(50)))
    statuses = sorted(r.status for r in responses)
    assert statuses == [401] * 5 + [429] * 45
    limited = next(r for r in responses if r.status == 429)
    assert 0 < int(limited.headers["Retry-After"]) <= settings.login_window
    assert (await limited.json())["error"]["code"] == "rate_limited"
    # Locked: even the right password waits for the window.
    assert (await attempt(client, "li.na", PASSWORD)).status == 429


async def test_successes_do_not_count(client: TestClient[Any, Any]) -> None:
    await make_staff("li.na", ["sales"])
    for _ in range(4):
        assert (await attempt(client, "li.na", "wrong-pass")).status == 401
    for _ in range(10):
        assert (await attempt(client, "li.na", PASSWORD)).status == 200
    assert (await attempt(client, "li.na", "wrong-pass")).status == 401  # the fifth failure
    assert (await attempt(client, "li.na", "wrong-pass")).status == 429


async def test_one_address_is_limited_across_accounts(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    assert settings.login_failures_per_ip == 30
    responses = await asyncio.gather(
        *(attempt(client, f"nobody{n}", "wrong-pass") for n in range(40))
    )
    assert sorted(r.status for r in responses) == [401] * 30 + [429] * 10


async def test_registration_is_limited_per_address(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    async def register(n: int) -> Any:
        body = {"mobile": f"1390000{n:04d}", "password": "longer-pass-1", "name": "x"}
        return await client.post("/api/auth/register", json=body)

    responses = await asyncio.gather(*(register(n) for n in range(35)))
    assert sorted(r.status for r in responses) == [201] * 30 + [429] * 5
    assert await Member.all().count() == 30
