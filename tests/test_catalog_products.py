"""Products: what members and staff see, lists with filters and sorts, creating and editing,
the status transitions, and refusals (bad input, wrong callers) that change nothing."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import pytest

from deer.accounts.models import AuditLog
from deer.catalog.models import Product, ProductStatus, StockMovement
from deer.catalog.sellable import Channel, sellable_filter, why_not
from tests.auth_helpers import call, caller_token, error_code, field_paths, staff_token
from tests.catalog_helpers import (
    HOUR,
    NOW,
    Client,
    catalog_state,
    make_category,
    make_product,
    ops,
    shopper,
)

# Outbox rows stay until the test relays them: no relay runs in the app.
pytestmark = pytest.mark.manual_outbox_relay

STAFF_ONLY = {"cost", "status", "created_at", "updated_at"}


async def codes(client: Client, token: str | None, **params: Any) -> list[str]:
    status, body = await call(client, "GET", "/api/products", token, params=params)
    assert status == 200, body
    return [item["code"] for item in body["items"]]


# --- who sees what ---------------------------------------------------------------------------


async def test_members_and_visitors_see_only_what_is_on_sale(client: Client) -> None:
    phones = await make_category("手机")
    on_sale = await make_product("ON", phones)
    mini_only = await make_product("MINI", phones, channels=["mini_program"])
    hidden = [
        await make_product("DRAFT", phones, status=ProductStatus.DRAFT),
        await make_product("OFF", phones, status=ProductStatus.OFFLINE),
        await make_product("GONE", phones, status=ProductStatus.DELETED),
        await make_product("SOON", phones, sale_start=NOW + HOUR),
        await make_product("OVER", phones, sale_start=NOW - 2 * HOUR, sale_end=NOW - HOUR),
    ]
    windowed = await make_product("WINDOW", phones, sale_start=NOW - HOUR, sale_end=NOW + HOUR)

    member = await shopper(client)
    for token in (None, member):
        assert await codes(client, token) == ["WINDOW", "ON"]
        assert await codes(client, token, channel="mini_program") == ["WINDOW", "MINI", "ON"]
        status, body = await call(client, "GET", "/api/products", token)
        for item in body["items"]:
            assert not STAFF_ONLY & set(item), item
        for product in (*hidden, mini_only):
            status, body = await call(client, "GET", f"/api/products/{product.id}", token)
            assert (status, error_code(body)) == (404, "not_found"), product.code
        status, body = await call(
            client,
            "GET",
            f"/api/products/{mini_only.id}",
            token,
            params={"channel": "mini_program"},
        )
        assert (status, body["code"]) == (200, "MINI")
        status, body = await call(client, "GET", f"/api/products/{on_sale.id}", token)
        assert status == 200
        assert not STAFF_ONLY & set(body)
        assert body["price"] == 9_900
        status, body = await call(client, "GET", "/api/products", token, params={"status": "draft"})
        assert (status, field_paths(body)) == (422, {"status"})

    for role in ("ops", "sales"):
        staff = await staff_token(client, f"{role}_reader", [role])
        everything = ["WINDOW", "OVER", "SOON", "OFF", "DRAFT", "MINI", "ON"]
        assert await codes(client, staff) == everything
        assert await codes(client, staff, status="deleted") == ["GONE"]
        assert await codes(client, staff, status="draft") == ["DRAFT"]
        assert await codes(client, staff, channel="web") == [c for c in everything if c != "MINI"]
        for product in (*hidden, windowed):
            status, body = await call(client, "GET", f"/api/products/{product.id}", staff)
            assert (status, body["code"], body["cost"]) == (200, product.code, 5_000)
            assert body["status"] == product.status


async def test_a_bad_token_on_a_public_route_is_refused_not_ignored(client: Client) -> None:
    status, body = await call(client, "GET", "/api/products", "not-a-token")
    assert (status, error_code(body)) == (401, "token_invalid")


async def test_the_query_rule_agrees_with_why_not_on_every_case(client: Client) -> None:
    """`sellable_filter` (lists) and `why_not` (one product) are the same rule."""
    phones = await make_category("手机")
    windows = [(None, None), (NOW - HOUR, None), (NOW + HOUR, None), (None, NOW - HOUR),
               (NOW - HOUR, NOW + HOUR), (None, NOW + HOUR)]  # fmt: skip
    channel_sets = [[], ["web"], ["mini_program"], ["mini_program", "web"]]
    cases = itertools.product(ProductStatus, windows, channel_sets)
    for number, (status, (start, end), channels) in enumerate(cases):
        await make_product(
            f"C{number}", phones, status=status, sale_start=start, sale_end=end, channels=channels
        )
    for channel in Channel:
        listed = set(
            await Product.filter(sellable_filter(channel, NOW)).values_list("id", flat=True)
        )
        expected = {
            product.id
            for product in await Product.all()
            if why_not(
                product.status,
                product.channels,
                product.sale_start,
                product.sale_end,
                channel,
                NOW,
            )
            is None
        }
        assert listed == expected
        assert len(expected) == 8  # online x 4 open windows x 2 channel sets with this channel


# --- lists -----------------------------------------------------------------------------------


async def test_filters_sorts_and_paging(client: Client) -> None:
    digital = await make_category("数码")
    phones = await make_category("手机", digital)
    old = await make_category("旧款", phones)
    home = await make_category("家居")
    await make_product("PH-1", phones, name="华为 Mate 70", price=599_900, sales=50)
    await make_product("PH-2", old, name="小米 14", price=299_900, sales=900)
    await make_product("EAR-1", digital, name="华为 FreeBuds", price=99_900, sales=300)
    await make_product("HOME-1", home, name="乳胶枕", price=19_900, sales=10)
    member = await shopper(client)
    staff = await ops(client)

    for token in (member, staff):
        assert await codes(client, token) == ["HOME-1", "EAR-1", "PH-2", "PH-1"]
        assert await codes(client, token, category_id=digital.id) == ["EAR-1", "PH-2", "PH-1"]
        assert await codes(client, token, category_id=phones.id) == ["PH-2", "PH-1"]
        assert await codes(client, token, category_id=987654) == []
        assert await codes(client, token, q="华为") == ["EAR-1", "PH-1"]
        assert await codes(client, token, q="ph-") == ["PH-2", "PH-1"]
        assert await codes(client, token, price_min=99_900, price_max=299_900) == [
            "EAR-1",
            "PH-2",
        ]
        assert await codes(client, token, sort="price_asc") == ["HOME-1", "EAR-1", "PH-2", "PH-1"]
        assert await codes(client, token, sort="price_desc") == [
            "PH-1",
            "PH-2",
            "EAR-1",
            "HOME-1",
        ]
        assert await codes(client, token, sort="sales") == ["PH-2", "EAR-1", "PH-1", "HOME-1"]
        status, body = await call(
            client, "GET", "/api/products", token, params={"size": 3, "page": 2, "sort": "sales"}
        )
        assert status == 200
        assert ([i["code"] for i in body["items"]], body["total"], body["page"], body["size"]) == (
            ["HOME-1"],
            4,
            2,
            3,
        )
    status, body = await call(client, "GET", "/api/products", member, params={"q": "华为"})
    assert body["items"][0]["category"] == {
        "id": digital.id,
        "name": "数码",
        "path": "数码",
        "path_ids": [digital.id],
    }
    assert body["items"][1]["category"]["path"] == "数码/手机"

    bad: list[tuple[dict[str, Any], set[str]]] = [
        ({"size": 101}, {"size"}),
        ({"page": 0}, {"page"}),
        ({"sort": "cheapest"}, {"sort"}),
        ({"channel": "app"}, {"channel"}),
        ({"price_min": -1}, {"price_min"}),
        ({"price_min": 500, "price_max": 100}, {"price_max"}),
        ({"category_id": "phones"}, {"category_id"}),
        ({"status": "sold"}, {"status"}),
        ({"colour": "red"}, {"colour"}),
    ]
    for params, paths in bad:
        status, body = await call(client, "GET", "/api/products", staff, params=params)
        assert (status, field_paths(body)) == (422, paths), params


# --- create and edit -------------------------------------------------------------------------


def product_body(category_id: int, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "code": "HW-M70",
        "name": "华为 Mate 70 Pro 12+512G 雅川青",
        "category_id": category_id,
        "description": "鸿蒙 5，卫星通话",
        "images": ["https://img.example.com/m70/1.jpg", "https://img.example.com/m70/2.jpg"],
        "price": 699_900,
        "cost": 520_000,
        "stock": 30,
        "channels": ["mini_program", "web"],
        "sale_start": "2026-11-11T00:00:00+08:00",
        "sale_end": None,
    }
    return {**body, **changes}


async def test_creating_and_editing_a_product(client: Client) -> None:
    digital = await make_category("数码")
    phones = await make_category("手机", digital)
    token = await ops(client)
    status, created = await call(
        client, "POST", "/api/products", token, json=product_body(phones.id)
    )
    assert status == 201, created
    for name in ("created_at", "updated_at"):
        assert dt.datetime.fromisoformat(created.pop(name)).tzinfo is not None
    assert created == {
        "id": created["id"],
        "code": "HW-M70",
        "name": "华为 Mate 70 Pro 12+512G 雅川青",
        "category": {
            "id": phones.id,
            "name": "手机",
            "path": "数码/手机",
            "path_ids": [digital.id, phones.id],
        },
        "description": "鸿蒙 5，卫星通话",
        "images": ["https://img.example.com/m70/1.jpg", "https://img.example.com/m70/2.jpg"],
        "price": 699_900,
        "cost": 520_000,
        "stock": 30,
        "sales": 0,
        "channels": ["mini_program", "web"],
        "sale_start": "2026-11-10T16:00:00Z",
        "sale_end": None,
        "status": "draft",
    }
    movements = await StockMovement.filter(product_id=created["id"]).values(
        "change", "delta", "stock_after", "user_id"
    )
    assert [(m["change"], m["delta"], m["stock_after"]) for m in movements] == [("set", 30, 30)]
    status, body = await call(client, "POST", "/api/products", token, json=product_body(phones.id))
    assert (status, error_code(body)) == (409, "product_code_taken")
    online_bare = product_body(phones.id, code="BARE", status="online", channels=[])
    status, body = await call(client, "POST", "/api/products", token, json=online_bare)
    assert (status, body["error"]["details"]) == (409, {"missing": ["channels"]})
    status, body = await call(
        client, "POST", "/api/products", token, json={**online_bare, "channels": ["web"]}
    )
    assert (status, body["status"]) == (201, "online")

    product_id = created["id"]
    status, changed = await call(
        client,
        "PATCH",
        f"/api/products/{product_id}",
        token,
        json={"price": 649_900, "name": "华为 Mate 70 Pro", "sale_start": None},
    )
    assert status == 200, changed
    assert (changed["price"], changed["name"], changed["sale_start"], changed["stock"]) == (
        649_900,
        "华为 Mate 70 Pro",
        None,
        30,
    )
    entry = await AuditLog.filter(action="product.update").first()
    assert entry is not None
    assert entry.details["changes"]["price"] == [699_900, 649_900]
    assert entry.details["via"] == "api"

    other = await make_product("OTHER", phones)
    before = await catalog_state()
    status, body = await call(
        client, "PATCH", f"/api/products/{other.id}", token, json={"code": "HW-M70"}
    )
    assert (status, error_code(body)) == (409, "product_code_taken")
    status, body = await call(
        client, "PATCH", f"/api/products/{other.id}", token, json={"price": 0}
    )
    assert (status, error_code(body)) == (409, "product_not_ready")
    assert body["error"]["details"] == {"missing": ["price"]}
    status, body = await call(
        client, "PATCH", f"/api/products/{other.id}", token, json={"channels": []}
    )
    assert (status, body["error"]["details"]) == (409, {"missing": ["channels"]})
    assert await catalog_state() == before


async def test_a_deleted_product_cannot_be_edited(client: Client) -> None:
    phones = await make_category("手机")
    product = await make_product("P1", phones)
    token = await ops(client)
    status, _ = await call(client, "DELETE", f"/api/products/{product.id}", token)
    assert status == 204
    before = await catalog_state()
    for method, path, body in (
        ("PATCH", f"/api/products/{product.id}", {"price": 1}),
        ("POST", f"/api/products/{product.id}/online", None),
        ("POST", f"/api/products/{product.id}/offline", None),
        ("DELETE", f"/api/products/{product.id}", None),
        (
            "POST",
            f"/api/products/{product.id}/stock",
            {"mode": "set", "value": 1, "reason": "盘点"},
        ),
    ):
        status, answer = await call(client, method, path, token, json=body)
        assert (status, error_code(answer)) == (409, "product_deleted"), (method, path)
    assert await catalog_state() == before
    member = await shopper(client)
    status, answer = await call(client, "GET", f"/api/products/{product.id}", member)
    assert (status, error_code(answer)) == (404, "not_found")
    status, answer = await call(client, "GET", f"/api/products/{product.id}", token)
    assert (status, answer["status"]) == (200, "deleted")


# --- status ----------------------------------------------------------------------------------


async def test_transitions_and_their_refusals(client: Client) -> None:
    phones = await make_category("手机")
    draft = await make_product("P1", phones, status=ProductStatus.DRAFT)
    token = await ops(client)

    async def move(product_id: int, to: str) -> tuple[int, Any]:
        return await call(client, "POST", f"/api/products/{product_id}/{to}", token)

    before = await catalog_state()
    status, body = await move(draft.id, "offline")
    assert (status, error_code(body)) == (409, "illegal_transition")
    assert body["error"]["details"] == {"from": "draft", "to": "offline"}
    assert await catalog_state() == before

    status, body = await move(draft.id, "online")
    assert (status, body["status"]) == (200, "online")
    status, body = await move(draft.id, "online")
    assert (status, error_code(body), body["error"]["details"]) == (
        409,
        "illegal_transition",
        {"from": "online", "to": "online"},
    )
    status, body = await move(draft.id, "offline")
    assert (status, body["status"]) == (200, "offline")
    status, body = await move(draft.id, "offline")
    assert (status, body["error"]["details"]) == (409, {"from": "offline", "to": "offline"})
    status, body = await move(draft.id, "online")
    assert (status, body["status"]) == (200, "online")
    status, _ = await call(client, "DELETE", f"/api/products/{draft.id}", token)
    assert status == 204
    assert (await Product.get(id=draft.id)).status == ProductStatus.DELETED

    bare = await make_product("P2", phones, status=ProductStatus.DRAFT, price=0, channels=[])
    before = await catalog_state()
    status, body = await move(bare.id, "online")
    assert (status, error_code(body)) == (409, "product_not_ready")
    assert body["error"]["details"] == {"missing": ["price", "channels"]}
    assert "a price above 0 and at least one channel" in body["error"]["message"]
    assert await catalog_state() == before
    await Product.filter(id=bare.id).update(price=100)
    status, body = await move(bare.id, "online")
    assert (status, body["error"]["details"]) == (409, {"missing": ["channels"]})

    actions = (
        await AuditLog.filter(target_id=str(draft.id))
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["product.online", "product.offline", "product.online", "product.delete"]
    status, body = await move(987654, "online")
    assert (status, error_code(body)) == (404, "not_found")


# --- refusals --------------------------------------------------------------------------------


async def test_bad_product_input_changes_nothing(client: Client) -> None:
    phones = await make_category("手机")
    product = await make_product("P1", phones)
    token = await ops(client)
    before = await catalog_state()
    good = product_body(phones.id)
    creates: list[tuple[dict[str, Any], set[str]]] = [
        ({}, {"code", "name", "category_id", "price"}),
        ({**good, "code": "带中文"}, {"code"}),
        ({**good, "code": "-lead"}, {"code"}),
        ({**good, "name": ""}, {"name"}),
        ({**good, "name": "a\nb"}, {"name"}),
        ({**good, "price": -1}, {"price"}),
        ({**good, "price": 12.5}, {"price"}),
        ({**good, "cost": "free"}, {"cost"}),
        ({**good, "stock": -3}, {"stock"}),
        ({**good, "channels": ["app"]}, {"channels.0"}),
        ({**good, "channels": ["web", "web"]}, {"channels"}),
        ({**good, "images": ["ftp://x"]}, {"images.0"}),
        ({**good, "sale_start": "2026-11-11T00:00:00"}, {"sale_start"}),
        ({**good, "sale_end": "2026-11-10T00:00:00+08:00"}, {"sale_end"}),
        ({**good, "status": "offline"}, {"status"}),
        ({**good, "sales": 5}, {"sales"}),
        ({**good, "category_id": 424242}, {"category_id"}),
    ]
    for body, paths in creates:
        status, answer = await call(client, "POST", "/api/products", token, json=body)
        assert (status, field_paths(answer)) == (422, paths), (body, answer)
    patches: list[tuple[dict[str, Any], set[str]]] = [
        ({"price": None}, {"price"}),
        ({"channels": None}, {"channels"}),
        ({"stock": 5}, {"stock"}),
        ({"status": "online"}, {"status"}),
        ({"category_id": 424242}, {"category_id"}),
        ({"sale_start": "2026-11-11T00:00:00Z", "sale_end": "2026-11-01T00:00:00Z"}, {"sale_end"}),
    ]
    for body, paths in patches:
        status, answer = await call(
            client, "PATCH", f"/api/products/{product.id}", token, json=body
        )
        assert (status, field_paths(answer)) == (422, paths), (body, answer)
    await Product.filter(id=product.id).update(sale_end=NOW)
    status, answer = await call(
        client, "PATCH", f"/api/products/{product.id}", token, json={"sale_start": NOW.isoformat()}
    )
    assert (status, field_paths(answer)) == (422, {"sale_end"})
    await Product.filter(id=product.id).update(sale_end=None)
    for path in ("/api/products/424242", "/api/products/x1"):
        status, answer = await call(client, "PATCH", path, token, json={"price": 1})
        assert (status, error_code(answer)) == (404, "not_found")
    response = await client.post(
        "/api/products", data="code=1", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status == 415
    assert await catalog_state() == before


@pytest.mark.parametrize("caller", ["anonymous", "member", "sales", "sales_manager"])
async def test_only_ops_and_admins_write_products(client: Client, caller: str) -> None:
    token = await caller_token(client, caller)
    phones = await make_category("手机")
    product = await make_product("P1", phones)
    before = await catalog_state()
    expected = 401 if caller == "anonymous" else 403
    writes: list[tuple[str, str, Any]] = [
        ("POST", "/api/products", product_body(phones.id)),
        ("PATCH", f"/api/products/{product.id}", {"price": 1}),
        ("DELETE", f"/api/products/{product.id}", None),
        ("POST", f"/api/products/{product.id}/online", None),
        ("POST", f"/api/products/{product.id}/offline", None),
        (
            "POST",
            f"/api/products/{product.id}/stock",
            {"mode": "delta", "value": -1, "reason": "x"},
        ),
        ("POST", "/api/products/import", None),
    ]
    for method, path, body in writes:
        status, _ = await call(client, method, path, token, json=body)
        assert status == expected, (method, path)
    status, _ = await call(client, "GET", f"/api/products/{product.id}/stock-movements", token)
    assert status == (expected if caller in ("anonymous", "member") else 200)
    assert await catalog_state() == before
