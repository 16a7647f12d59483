"""The member's cart (`/api/cart`): one actor per member, current prices in every view, the
limits, refusals that change nothing, concurrent adds, and only ever the caller's own cart."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from deer import keys
from deer.accounts.models import Member
from deer.catalog.models import Category, Product, ProductStatus
from deer.errors import ValidationFailed
from deer.shop import cart
from deer.shop.errors import UnknownCommand
from tests.auth_helpers import (
    call,
    caller_token,
    error_code,
    field_paths,
    make_staff,
    member_token,
    sign_in,
)

Client = TestClient[Any, Any]
BOTH = ("web", "mini_program")
EMPTY = {"lines": [], "totals": {"count": 0, "quantity": 0, "amount": 0}}


async def make_product(
    code: str,
    *,
    price: int = 1990,
    stock: int = 100,
    status: ProductStatus = ProductStatus.ONLINE,
    channels: Sequence[str] = BOTH,
    sale_start: dt.datetime | None = None,
    sale_end: dt.datetime | None = None,
) -> Product:
    category = await Category.first() or await Category.create(name="数码")
    return await Product.create(
        code=code,
        name=f"商品 {code}",
        category=category,
        images=[f"https://img.example.com/{code}.jpg"],
        price=price,
        cost=price // 2,
        stock=stock,
        channels=list(channels),
        sale_start=sale_start,
        sale_end=sale_end,
        status=status,
    )


async def get_cart(client: Client, token: str, channel: str | None = None) -> Any:
    params = {"channel": channel} if channel else None
    status, body = await call(client, "GET", "/api/cart", token, params=params)
    assert status == 200, body
    return body


async def add(client: Client, token: str, product_id: int, quantity: int = 1, **more: Any) -> Any:
    status, body = await call(
        client,
        "POST",
        "/api/cart/items",
        token,
        json={"product_id": product_id, "quantity": quantity, **more},
    )
    assert status == 200, body
    return body


def quantities(body: Any) -> list[tuple[int, int, bool]]:
    return [(line["product_id"], line["quantity"], line["selected"]) for line in body["lines"]]


# --- the whole flow --------------------------------------------------------------------------


async def test_cart_flow(client: Client) -> None:
    token = await member_token(client, "13700000001")
    tea = await make_product("TEA", price=1990, stock=10)
    cup = await make_product("CUP", price=4500, stock=3)
    pot = await make_product("POT", price=12800)

    assert await get_cart(client, token) == EMPTY

    body = await add(client, token, tea.id, 2)
    line = body["lines"][0]
    added_at = dt.datetime.fromisoformat(line.pop("added_at"))
    assert added_at.tzinfo is not None
    assert abs((dt.datetime.now(dt.UTC) - added_at).total_seconds()) < 60
    assert line == {
        "product_id": tea.id,
        "code": "TEA",
        "name": "商品 TEA",
        "image": "https://img.example.com/TEA.jpg",
        "price": 1990,
        "added_price": 1990,
        "price_changed": False,
        "quantity": 2,
        "selected": True,
        "line_total": 3980,
        "sellable": True,
        "why_not": None,
        "low_stock": False,
    }
    assert body["totals"] == {"count": 1, "quantity": 2, "amount": 3980}

    await add(client, token, cup.id, 1)
    body = await add(client, token, pot.id, 1, selected=False)
    assert quantities(body) == [(tea.id, 2, True), (cup.id, 1, True), (pot.id, 1, False)]
    assert body["totals"] == {"count": 2, "quantity": 3, "amount": 3980 + 4500}

    # Adding a product again adds to its line, which keeps its place (and takes the selection).
    body = await add(client, token, tea.id, 3)
    assert quantities(body) == [(tea.id, 5, True), (cup.id, 1, True), (pot.id, 1, False)]
    assert body == await get_cart(client, token)

    status, body = await call(
        client, "PATCH", f"/api/cart/items/{cup.id}", token, json={"quantity": 4}
    )
    assert status == 200, body
    assert quantities(body)[1] == (cup.id, 4, True)
    assert body["lines"][1]["low_stock"] is True  # 4 wanted, 3 in stock: flagged, not refused
    assert body["lines"][1]["line_total"] == 18000

    status, body = await call(
        client, "PATCH", f"/api/cart/items/{pot.id}", token, json={"selected": True}
    )
    assert status == 200
    assert body["totals"] == {"count": 3, "quantity": 10, "amount": 5 * 1990 + 18000 + 12800}

    status, body = await call(client, "PATCH", "/api/cart", token, json={"selected": False})
    assert status == 200
    assert [line["selected"] for line in body["lines"]] == [False, False, False]
    assert body["totals"] == {"count": 0, "quantity": 0, "amount": 0}
    status, body = await call(client, "PATCH", "/api/cart", token, json={"selected": True})
    assert [line["selected"] for line in body["lines"]] == [True, True, True]

    status, body = await call(client, "DELETE", f"/api/cart/items/{cup.id}", token)
    assert status == 200
    assert quantities(body) == [(tea.id, 5, True), (pot.id, 1, True)]
    # Removing what is not there (a retried DELETE) changes nothing and is no error.
    status, again = await call(client, "DELETE", f"/api/cart/items/{cup.id}", token)
    assert (status, again) == (200, body)

    status, body = await call(client, "DELETE", "/api/cart", token)
    assert (status, body) == (200, EMPTY)
    assert await get_cart(client, token) == EMPTY


# --- limits ----------------------------------------------------------------------------------


async def test_quantity_of_one_product_is_refused_past_99(client: Client) -> None:
    token = await member_token(client, "13700000001")
    tea = await make_product("TEA")
    await add(client, token, tea.id, 60)
    before = await get_cart(client, token)

    status, body = await call(
        client, "POST", "/api/cart/items", token, json={"product_id": tea.id, "quantity": 40}
    )
    assert status == 409
    assert body["error"]["code"] == "quantity_limit"
    assert body["error"]["details"] == {"product_id": tea.id, "in_cart": 60, "max_quantity": 99}
    assert "at most 39 more" in body["error"]["message"]
    assert await get_cart(client, token) == before

    assert quantities(await add(client, token, tea.id, 39)) == [(tea.id, 99, True)]
    status, body = await call(
        client, "POST", "/api/cart/items", token, json={"product_id": tea.id, "quantity": 1}
    )
    assert (status, error_code(body)) == (409, "quantity_limit")
    assert body["error"]["message"].endswith("99 already in the cart, no more fit")


async def test_at_most_50_lines(client: Client) -> None:
    token = await member_token(client, "13700000001")
    products = [await make_product(f"P{n:02}") for n in range(cart.MAX_LINES + 1)]
    for product in products[: cart.MAX_LINES]:
        await add(client, token, product.id)
    before = await get_cart(client, token)
    assert len(before["lines"]) == 50
    assert [line["product_id"] for line in before["lines"]] == [p.id for p in products[:50]]

    status, body = await call(
        client, "POST", "/api/cart/items", token, json={"product_id": products[50].id}
    )
    assert status == 409
    assert body["error"]["code"] == "cart_full"
    assert body["error"]["details"] == {"max_lines": 50}
    assert await get_cart(client, token) == before

    # More of a product already there is not a new line.
    body = await add(client, token, products[0].id, 2)
    assert body["lines"][0]["quantity"] == 3
    assert len(body["lines"]) == 50


async def test_only_sellable_products_can_be_added(client: Client) -> None:
    token = await member_token(client, "13700000001")
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    cases = {
        "not_online": [
            await make_product("DRAFT", status=ProductStatus.DRAFT),
            await make_product("OFF", status=ProductStatus.OFFLINE),
        ],
        "not_started": [await make_product("SOON", sale_start=now + hour)],
        "ended": [await make_product("OVER", sale_start=now - 2 * hour, sale_end=now - hour)],
        "channel": [await make_product("MINI", channels=["mini_program"])],
        "missing": [await make_product("GONE", status=ProductStatus.DELETED)],
    }
    refused: list[tuple[int, str]] = [
        (product.id, why) for why, products in cases.items() for product in products
    ]
    refused.append((987654, "missing"))  # no such product
    for product_id, why in refused:
        status, body = await call(
            client, "POST", "/api/cart/items", token, json={"product_id": product_id}
        )
        assert status == 409, (product_id, body)
        assert body["error"]["code"] == "not_sellable"
        assert body["error"]["details"] == {"product_id": product_id, "why_not": why}
    assert await get_cart(client, token) == EMPTY

    # Inside its window and on its channel, the same kind of product is sellable.
    window = await make_product("NOW", sale_start=now - hour, sale_end=now + hour)
    mini = cases["channel"][0]
    await add(client, token, window.id)
    status, body = await call(
        client,
        "POST",
        "/api/cart/items",
        token,
        json={"product_id": mini.id},
        params={"channel": "mini_program"},
    )
    assert status == 200, body
    assert quantities(body) == [(window.id, 1, True), (mini.id, 1, True)]


# --- the view is always current --------------------------------------------------------------


async def test_the_view_shows_current_prices_and_flags_what_changed(client: Client) -> None:
    token = await member_token(client, "13700000001")
    tea = await make_product("TEA", price=1990, stock=10)
    cup = await make_product("CUP", price=4500, stock=10)
    pot = await make_product("POT", price=12800, stock=10)
    web = await make_product("WEB", price=500, stock=10, channels=["web"])
    for product in (tea, cup, pot, web):
        await add(client, token, product.id, 2)
    assert (await get_cart(client, token))["totals"]["amount"] == 2 * (1990 + 4500 + 12800 + 500)

    await Product.filter(id=tea.id).update(price=1590)
    await Product.filter(id=cup.id).update(status=ProductStatus.OFFLINE)
    await Product.filter(id=pot.id).update(stock=1)

    body = await get_cart(client, token)
    by_id = {line["product_id"]: line for line in body["lines"]}
    assert [line["product_id"] for line in body["lines"]] == [tea.id, cup.id, pot.id, web.id]
    assert (by_id[tea.id]["price"], by_id[tea.id]["added_price"]) == (1590, 1990)
    assert by_id[tea.id]["price_changed"] is True
    assert by_id[tea.id]["line_total"] == 3180
    assert (by_id[cup.id]["sellable"], by_id[cup.id]["why_not"]) == (False, "not_online")
    assert (by_id[pot.id]["sellable"], by_id[pot.id]["low_stock"]) == (True, True)
    # Totals count the selected lines that can be bought: not the offline one.
    assert body["totals"] == {"count": 3, "quantity": 6, "amount": 2 * (1590 + 12800 + 500)}

    # The same cart seen from the mini-program: the web-only product is flagged there.
    mini = await get_cart(client, token, "mini_program")
    line = next(line for line in mini["lines"] if line["product_id"] == web.id)
    assert (line["sellable"], line["why_not"]) == (False, "channel")
    assert mini["totals"] == {"count": 2, "quantity": 4, "amount": 2 * (1590 + 12800)}

    # A deleted product stays in the cart, flagged, until the member removes it.
    await Product.filter(id=pot.id).update(status=ProductStatus.DELETED)
    body = await get_cart(client, token)
    assert next(line for line in body["lines"] if line["product_id"] == pot.id)["why_not"] == (
        "missing"
    )
    assert body["totals"] == {"count": 2, "quantity": 4, "amount": 2 * (1590 + 500)}

    # Adding again refreshes the price the member saw.
    body = await add(client, token, tea.id, 1)
    assert (body["lines"][0]["added_price"], body["lines"][0]["price_changed"]) == (1590, False)


# --- concurrency and isolation ---------------------------------------------------------------


async def test_concurrent_adds_lose_no_update(client: Client) -> None:
    token = await member_token(client, "13700000001")
    tea = await make_product("TEA")
    cup = await make_product("CUP")
    requests = [
        call(client, "POST", "/api/cart/items", token, json={"product_id": product.id})
        for product in (tea, cup)
        for _ in range(30)
    ]
    answers = await asyncio.gather(*requests)
    assert [status for status, _ in answers] == [200] * 60
    body = await get_cart(client, token)
    assert sorted(quantities(body)) == sorted([(tea.id, 30, True), (cup.id, 30, True)])
    # Each answer is the cart right after its own add: every count from 1 to 30 is seen once.
    seen = sorted(
        line["quantity"]
        for _, answer in answers[:30]
        for line in answer["lines"]
        if line["product_id"] == tea.id
    )
    assert seen == list(range(1, 31))


async def test_a_member_reaches_only_their_own_cart(client: Client) -> None:
    alice = await member_token(client, "13700000001")
    bob = await member_token(client, "13700000002")
    tea = await make_product("TEA")
    cup = await make_product("CUP")
    alices = await add(client, alice, tea.id, 3)

    assert (await get_cart(client, bob))["lines"] == []
    # Bob's writes name the same product, but land in Bob's cart: the key is the caller.
    status, body = await call(
        client, "PATCH", f"/api/cart/items/{tea.id}", bob, json={"quantity": 9}
    )
    assert (status, error_code(body)) == (404, "not_in_cart")
    for method, path in (("DELETE", f"/api/cart/items/{tea.id}"), ("DELETE", "/api/cart")):
        status, body = await call(client, method, path, bob)
        assert (status, body["lines"]) == (200, [])
    status, body = await call(client, "PATCH", "/api/cart", bob, json={"selected": False})
    assert (status, body["lines"]) == (200, [])
    await add(client, bob, cup.id)
    assert await get_cart(client, alice) == alices

    alice_id = (await Member.get(mobile="13700000001")).id
    assert [line["product_id"] for line in await cart.lines_of(alice_id)] == [tea.id]


# --- callers ---------------------------------------------------------------------------------

ENDPOINTS = (
    ("GET", "/api/cart", None),
    ("DELETE", "/api/cart", None),
    ("PATCH", "/api/cart", {"selected": True}),
    ("POST", "/api/cart/items", {"product_id": 1}),
    ("PATCH", "/api/cart/items/1", {"quantity": 2}),
    ("DELETE", "/api/cart/items/1", None),
)


@pytest.mark.parametrize("caller", ["anonymous", "admin", "sales_manager", "sales", "ops"])
async def test_staff_and_anonymous_callers_are_refused(client: Client, caller: str) -> None:
    token = await caller_token(client, caller)
    # an admin passes the policy (`/api/*`) but is staff: the routes are members-only
    code = {"anonymous": "unauthorized", "admin": "members_only"}.get(caller, "forbidden")
    expected = (401 if caller == "anonymous" else 403, code)
    for method, path, json in ENDPOINTS:
        status, body = await call(client, method, path, token, json=json)
        assert (status, error_code(body)) == expected, (method, path)


async def test_a_staff_user_holding_the_member_role_still_has_no_cart(client: Client) -> None:
    """The role passes the policy; the endpoint wants a member (a staff id is no cart key)."""
    staff = await make_staff("shopper", ["member"])
    token = await sign_in(client, "shopper")
    for method, path, json in ENDPOINTS:
        status, body = await call(client, method, path, token, json=json)
        assert (status, error_code(body)) == (403, "members_only"), (method, path)
    assert await cart.lines_of(staff.id) == []
    document = await (await client.get("/api/openapi.json")).json()
    for method, path in (("get", "/api/cart"), ("patch", "/api/cart/items/{product_id}")):
        assert document["paths"][path][method]["description"] == (
            "Only for members: others get 403 (`members_only`) whatever their roles."
        )


# --- bad input changes nothing ---------------------------------------------------------------


async def test_bad_input_is_refused_and_changes_nothing(client: Client) -> None:
    token = await member_token(client, "13700000001")
    tea = await make_product("TEA")
    await add(client, token, tea.id, 2)
    before = await get_cart(client, token)
    item = f"/api/cart/items/{tea.id}"

    async def refused(
        method: str, path: str, json: Any = None, channel: str | None = None
    ) -> tuple[int, str, set[str]]:
        """Status, code and invalid fields (422) of a refused call, once the cart is checked."""
        params = {"channel": channel} if channel else None
        status, body = await call(client, method, path, token, json=json, params=params)
        assert await get_cart(client, token) == before, (method, path, json)
        return status, error_code(body), field_paths(body) if status == 422 else set()

    def invalid(*fields: str) -> tuple[int, str, set[str]]:
        return 422, "validation_error", set(fields)

    assert await refused("GET", "/api/cart", channel="app") == invalid("channel")

    post = "POST", "/api/cart/items"
    assert await refused(*post, {}) == invalid("product_id")
    for product_id in (0, -1, 2**63, "tea", None):
        assert await refused(*post, {"product_id": product_id}) == invalid("product_id")
    for quantity in (0, 100, 1.5, "two", None):
        wrong = {"product_id": tea.id, "quantity": quantity}
        assert await refused(*post, wrong) == invalid("quantity")
    assert await refused(*post, {"product_id": tea.id, "selected": "maybe"}) == invalid("selected")
    assert await refused(*post, {"product_id": tea.id, "price": 1}) == invalid("price")
    assert await refused(*post, {"product_id": tea.id}, "app") == invalid("channel")
    assert await refused(*post, [tea.id]) == invalid("(body)")

    assert await refused("PATCH", item, {}) == invalid("(body)")
    assert await refused("PATCH", item, {"quantity": None}) == invalid("quantity")
    assert await refused("PATCH", item, {"selected": None}) == invalid("selected")
    assert await refused("PATCH", item, {"quantity": 0}) == invalid("quantity")
    assert await refused("PATCH", item, {"quantity": 100}) == invalid("quantity")
    assert await refused("PATCH", item, {"selected": "maybe"}) == invalid("selected")
    assert await refused("PATCH", item, {"quantity": 1, "price": 1}) == invalid("price")
    missing = await refused("PATCH", "/api/cart/items/987654", {"quantity": 1})
    assert missing == (404, "not_in_cart", set())
    for wrong_id in ("tea", "0x1", "99999999999999999999"):
        assert await refused("PATCH", f"/api/cart/items/{wrong_id}", {"quantity": 1}) == (
            404,
            "not_found",
            set(),
        )
        assert await refused("DELETE", f"/api/cart/items/{wrong_id}") == (404, "not_found", set())
    assert await refused("DELETE", item, channel="app") == invalid("channel")

    assert await refused("PATCH", "/api/cart", {}) == invalid("selected")
    assert await refused("PATCH", "/api/cart", {"selected": None}) == invalid("selected")
    assert await refused("PATCH", "/api/cart", {"selected": True, "x": 1}) == invalid("x")
    assert await refused("DELETE", "/api/cart", channel="app") == invalid("channel")

    # Not JSON, or not sent as JSON: 400 and 415, for every endpoint with a body.
    for method, path in (("POST", "/api/cart/items"), ("PATCH", item), ("PATCH", "/api/cart")):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        response = await client.request(method, path, data=b"{oops", headers=headers)
        assert (response.status, error_code(await response.json())) == (400, "malformed_json")
        headers["Content-Type"] = "text/plain"
        response = await client.request(method, path, data=b"{}", headers=headers)
        assert (response.status, error_code(await response.json())) == (
            415,
            "unsupported_media_type",
        )
    assert await get_cart(client, token) == before


# --- the actor's own commands ----------------------------------------------------------------


async def test_remove_ordered_takes_lines_out_once_per_order(client: Client) -> None:
    await member_token(client, "13700000001")
    member_id = (await Member.get(mobile="13700000001")).id
    runtime = client.app[keys.ACTORS]
    tea, cup, pot = [await make_product(code) for code in ("TEA", "CUP", "POT")]
    for product in (tea, cup, pot):
        await cart.add(runtime, member_id, product.id, 2, True, cart.Channel.WEB)

    left = await cart.remove_ordered(runtime, member_id, [tea.id, pot.id], order_id=7001)
    assert [line["product_id"] for line in left] == [cup.id]
    # The member buys tea again; the order side repeats its removal: nothing more goes.
    await cart.add(runtime, member_id, tea.id, 1, True, cart.Channel.WEB)
    left = await cart.remove_ordered(runtime, member_id, [tea.id, pot.id], order_id=7001)
    assert [(line["product_id"], line["quantity"]) for line in left] == [(cup.id, 2), (tea.id, 1)]
    left = await cart.remove_ordered(runtime, member_id, [tea.id], order_id=7002)
    assert [line["product_id"] for line in left] == [cup.id]


async def test_the_actor_refuses_what_it_does_not_know(client: Client) -> None:
    runtime = client.app[keys.ACTORS]
    with pytest.raises(ValidationFailed) as refused:
        await runtime.ask(cart.KIND, "41", {"type": "checkout"})
    assert refused.value.code == UnknownCommand.code
    with pytest.raises(ValidationFailed) as refused:
        await runtime.ask(
            cart.KIND,
            "41",
            {"type": "add", "product_id": 1, "quantity": 0, "selected": True},
        )
    assert refused.value.code == "validation_error"
    assert await cart.lines_of(41) == []
