"""`GET /api/commands/{id}`: the caller of a request that timed out (`504 actor_timeout`) learns
what became of its command: pending while nobody hosts its actor, then applied, refused (with
the very error the request would have answered) or failed (dead-lettered; once replayed by an
admin, applied). Only that caller may read it; bad input and other callers change nothing.

The timeouts are real: the cart partitions' leases are held by a paused owner that never reads
them, as a process stuck in a long pause would; releasing them lets the app's runtime take the
partitions over and apply what waited, in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Final

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from actors.base import JsonObject, Outcome
from actors.leases import lease_key
from config.settings import Settings
from deer.accounts.tokens import Principal
from deer.app import create_app
from deer.shop.cart import Cart
from deer.web import askers
from tests.auth_helpers import call, error_code, member_token, staff_token
from tests.shop_support import make_product

Client = TestClient[Any, Any]
PARTITIONS: Final = 2
PAUSED_OWNER: Final = "paused-owner:1"


@pytest.fixture
def paused_settings(settings: Settings) -> Settings:
    """Asks give up after half a second; leases are looked at five times a second."""
    return settings.with_values(
        actor_partitions=PARTITIONS,
        actor_lease_ttl=1.0,
        actor_lease_renew=0.2,
        actor_ask_timeout=0.5,
        actor_max_attempts=1,
    )


@pytest.fixture
async def paused(
    paused_settings: Settings, aiohttp_client: Any, secret_url: Any
) -> AsyncIterator[tuple[Client, Callable[[], Coroutine[Any, Any, None]]]]:
    """A client of an app whose cart partitions are held by a paused owner, and `resume`,
    which lets their leases go (the app's runtime takes them over within a renewal)."""
    redis = Redis.from_url(secret_url(paused_settings.redis_url))
    leases = [lease_key(paused_settings, "cart", p) for p in range(PARTITIONS)]
    for lease in leases:
        await redis.set(lease, PAUSED_OWNER, px=60_000)

    async def resume() -> None:
        await redis.delete(*leases)

    try:
        client: Client = await aiohttp_client(create_app(paused_settings))
        yield client, resume
    finally:
        await redis.aclose()


async def timed_out_add(client: Client, token: str, product_id: int, quantity: int) -> str:
    """Add to the cart while its actor is not hosted: a 504 carrying the command id."""
    status, body = await call(
        client,
        "POST",
        "/api/cart/items",
        token,
        json={"product_id": product_id, "quantity": quantity},
    )
    assert status == 504, body
    assert error_code(body) == "actor_timeout"
    command_id: str = body["error"]["details"]["command_id"]
    return command_id


async def command(
    client: Client, token: str | None, command_id: str, **params: Any
) -> tuple[int, Any]:
    return await call(client, "GET", f"/api/commands/{command_id}", token, params=params)


def cart_quantities(body: Any) -> dict[int, int]:
    return {line["product_id"]: line["quantity"] for line in body["lines"]}


async def test_a_timed_out_add_is_pending_then_applied_and_only_its_caller_sees_it(
    paused: tuple[Client, Callable[[], Coroutine[Any, Any, None]]],
) -> None:
    client, resume = paused
    buyer = await member_token(client, "13700000001")
    other = await member_token(client, "13700000002")
    admin = await staff_token(client, "root", ["admin"])
    tea = await make_product(stock=100)
    command_id = await timed_out_add(client, buyer, tea.id, 2)

    response = await client.get(
        f"/api/commands/{command_id}", headers={"Authorization": f"Bearer {buyer}"}
    )
    assert response.status == 200
    assert response.headers["Retry-After"] == "1"
    pending = {"command_id": command_id, "status": "pending", "http_status": None, "error": None}
    assert await response.json() == pending
    began = time.monotonic()
    assert await command(client, buyer, command_id, wait="0.3") == (200, pending)
    assert time.monotonic() - began >= 0.3  # it waited for an outcome that did not come

    # Nobody else learns anything of it, not even whether it exists.
    for caller in (other, admin):
        status, body = await command(client, caller, command_id)
        assert (status, error_code(body)) == (404, "command_not_found")
    status, body = await command(client, None, command_id)
    assert (status, error_code(body)) == (401, "unauthorized")

    await resume()
    applied = {"command_id": command_id, "status": "applied", "http_status": None, "error": None}
    assert await command(client, buyer, command_id, wait="10") == (200, applied)
    _, cart = await call(client, "GET", "/api/cart", buyer)
    assert cart_quantities(cart) == {tea.id: 2}  # applied once
    _, theirs = await call(client, "GET", "/api/cart", other)
    assert theirs["lines"] == []
    status, body = await command(client, other, command_id)
    assert (status, error_code(body)) == (404, "command_not_found")


async def test_a_refused_command_answers_the_error_its_request_would_have(
    paused: tuple[Client, Callable[[], Coroutine[Any, Any, None]]],
) -> None:
    client, resume = paused
    buyer = await member_token(client, "13700000001")
    tea = await make_product(stock=500)
    first = await timed_out_add(client, buyer, tea.id, 60)
    second = await timed_out_add(client, buyer, tea.id, 60)  # 120 > 99 once the first is in
    await resume()
    status, body = await command(client, buyer, first, wait="10")
    assert (status, body["status"]) == (200, "applied")
    status, refused = await command(client, buyer, second, wait="10")
    assert (status, refused["status"]) == (200, "refused")
    # The same request now, with the actor hosted, answers exactly that.
    live_status, live = await call(
        client, "POST", "/api/cart/items", buyer, json={"product_id": tea.id, "quantity": 60}
    )
    assert (live_status, error_code(live)) == (409, "quantity_limit")
    assert refused == {
        "command_id": second,
        "status": "refused",
        "http_status": live_status,
        "error": live["error"],
    }
    _, cart = await call(client, "GET", "/api/cart", buyer)
    assert cart_quantities(cart) == {tea.id: 60}


async def test_a_failed_command_is_failed_until_an_admin_replays_it(
    paused: tuple[Client, Callable[[], Coroutine[Any, Any, None]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, resume = paused
    buyer = await member_token(client, "13700000001")
    admin = await staff_token(client, "root", ["admin"])
    tea = await make_product(stock=100)
    handle = Cart.handle
    broken = True

    async def flaky(self: Cart, key: str, state: JsonObject, body: JsonObject) -> Outcome:
        if broken:
            raise RuntimeError("the cart's code has a bug")
        return await handle(self, key, state, body)

    monkeypatch.setattr(Cart, "handle", flaky)
    command_id = await timed_out_add(client, buyer, tea.id, 3)
    await resume()
    status, body = await command(client, buyer, command_id, wait="10")
    assert (status, body["status"], body["http_status"]) == (200, "failed", 500)
    assert error_code(body) == "command_failed"
    assert "bug" not in body["error"]["message"]  # the actor's own error stays with operators

    broken = False  # the fix is deployed; an admin replays the dead letter
    status, page = await call(client, "GET", "/api/admin/actors/cart/dead-letters", admin)
    assert status == 200, page
    [letter] = page["items"]
    assert letter["command_id"] == command_id
    status, replayed = await call(
        client, "POST", f"/api/admin/actors/cart/dead-letters/{letter['id']}/replay", admin
    )
    assert (status, replayed["status"]) == (200, "sent")

    async def applied() -> bool:
        _, body = await command(client, buyer, command_id, wait="1")
        return bool(body["status"] == "applied")

    deadline = time.monotonic() + 10
    while not await applied():
        assert time.monotonic() < deadline, "the replayed command applied"
    _, cart = await call(client, "GET", "/api/cart", buyer)
    assert cart_quantities(cart) == {tea.id: 3}


async def test_many_callers_each_see_only_their_own_commands(
    paused: tuple[Client, Callable[[], Coroutine[Any, Any, None]]],
) -> None:
    """Twelve members time out at once; twelve fetches each wait while the partitions are
    taken over; every member reads their own command and none another's."""
    client, resume = paused
    tokens = [await member_token(client, f"1370000{index:04d}") for index in range(12)]
    tea = await make_product(stock=1_000)
    ids = await asyncio.gather(*(timed_out_add(client, token, tea.id, 1) for token in tokens))
    assert len(set(ids)) == len(ids)
    for index, token in enumerate(tokens):
        status, body = await command(client, token, ids[(index + 1) % len(ids)])
        assert (status, error_code(body)) == (404, "command_not_found")

    waiting = [
        asyncio.create_task(command(client, token, command_id, wait="10"))
        for token, command_id in zip(tokens, ids, strict=True)
    ]
    await asyncio.sleep(0.1)
    await resume()
    for (status, body), command_id in zip(await asyncio.gather(*waiting), ids, strict=True):
        assert (status, body["command_id"], body["status"]) == (200, command_id, "applied")
    for token in tokens:
        _, cart = await call(client, "GET", "/api/cart", token)
        assert cart_quantities(cart) == {tea.id: 1}


async def test_another_process_answers_for_the_command(
    paused: tuple[Client, Callable[[], Coroutine[Any, Any, None]]],
    paused_settings: Settings,
    aiohttp_client: Any,
) -> None:
    """The 504 came from one process; the caller's next request lands on another (a second
    app on the same PostgreSQL and Redis), which knows the asker and the outcome as well."""
    first, resume = paused
    second: Client = await aiohttp_client(create_app(paused_settings))
    buyer = await member_token(first, "13700000001")
    tea = await make_product(stock=100)
    command_id = await timed_out_add(first, buyer, tea.id, 4)
    assert (await command(second, buyer, command_id))[1]["status"] == "pending"
    await resume()
    status, body = await command(second, buyer, command_id, wait="10")
    assert (status, body["status"]) == (200, "applied")
    _, cart = await call(second, "GET", "/api/cart", buyer)
    assert cart_quantities(cart) == {tea.id: 4}


@pytest.mark.parametrize(
    ("command_id", "params", "code"),
    [
        ("not-a-command", {}, "invalid_command_id"),
        ("A" * 32, {}, "invalid_command_id"),  # ids are lowercase
        ("a" * 33, {}, "invalid_command_id"),
        ("a" * 32, {"wait": "11"}, "validation_error"),
        ("a" * 32, {"wait": "-1"}, "validation_error"),
        ("a" * 32, {"wait": "soon"}, "validation_error"),
        ("a" * 32, {"timeout": "1"}, "validation_error"),
    ],
)
async def test_bad_input_is_a_422(
    client: Client, command_id: str, params: dict[str, str], code: str
) -> None:
    token = await member_token(client, "13700000001")
    status, body = await command(client, token, command_id, **params)
    assert (status, error_code(body)) == (422, code)
    assert body["error"]["message"]


async def test_an_id_nobody_timed_out_on_is_not_found(client: Client) -> None:
    token = await member_token(client, "13700000001")
    status, body = await command(client, token, "0123456789abcdef" * 2)
    assert (status, error_code(body)) == (404, "command_not_found")
    status, body = await command(client, None, "0123456789abcdef" * 2)
    assert (status, error_code(body)) == (401, "unauthorized")


async def test_an_asker_redis_cannot_record_is_only_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Recording the asker never raises (so the auth middleware lets the 504 go on, not a
    500): Redis refusing the record is only logged."""
    gone = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    buyer = Principal("member", 7, ("member",), None, "jti", "family", 0)
    try:
        await askers.remember(gone, settings, "ab" * 16, buyer)
    finally:
        await gone.aclose()
    assert "could not be recorded" in caplog.text
