"""Product events: one per accepted write, none for a refused one, written in the write's
transaction and relayed to the Redis stream `deer:events` with the product's public document."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from tests.auth_helpers import call
from tests.catalog_helpers import (
    Client,
    catalog_state,
    make_category,
    make_product,
    ops,
    outbox_rows,
    relayed_events,
)

# Outbox rows stay until the test relays them: no relay runs in the app.
pytestmark = pytest.mark.manual_outbox_relay


async def test_every_write_emits_exactly_one_event(client: Client) -> None:
    digital = await make_category("数码")
    phones = await make_category("手机", digital)
    token = await ops(client)
    status, created = await call(
        client,
        "POST",
        "/api/products",
        token,
        json={
            "code": "HW-1",
            "name": "华为 Mate 70",
            "category_id": phones.id,
            "price": 699_900,
            "cost": 520_000,
            "stock": 5,
            "channels": ["web"],
            "sale_end": "2027-01-01T00:00:00Z",
        },
    )
    assert status == 201
    product = f"/api/products/{created['id']}"
    writes: list[tuple[str, str, Any]] = [
        ("PATCH", product, {"price": 649_900, "name": "华为 Mate 70 Pro"}),
        ("POST", f"{product}/online", None),
        ("POST", f"{product}/stock", {"mode": "delta", "value": -2, "reason": "出库"}),
        ("POST", f"{product}/offline", None),
        ("DELETE", product, None),
    ]
    for method, path, body in writes:
        status, _ = await call(client, method, path, token, json=body)
        assert status in (200, 204), (method, path)

    events = await relayed_events(client)
    assert [event["type"] for event in events] == [
        "product.created",
        "product.updated",
        "product.status_changed",
        "product.stock_changed",
        "product.status_changed",
        "product.deleted",
    ]
    assert len({event["id"] for event in events}) == 6
    first = events[0]["product"]
    for name in ("created_at", "updated_at"):
        assert dt.datetime.fromisoformat(first.pop(name)).tzinfo is not None
    assert first == {
        "id": created["id"],
        "code": "HW-1",
        "name": "华为 Mate 70",
        "category": {
            "id": phones.id,
            "name": "手机",
            "path": "数码/手机",
            "path_ids": [digital.id, phones.id],
        },
        "description": "",
        "images": [],
        "price": 699_900,
        "status": "draft",
        "stock": 5,
        "sales": 0,
        "channels": ["web"],
        "sale_start": None,
        "sale_end": "2027-01-01T00:00:00+00:00",
    }
    assert "cost" not in str(events)
    assert events[1]["changes"] == ["name", "price"]
    assert events[1]["product"]["price"] == 649_900
    assert (events[2]["from"], events[2]["to"], events[2]["product"]["status"]) == (
        "draft",
        "online",
        "online",
    )
    stock_event = events[3]
    assert (
        stock_event["change"],
        stock_event["delta"],
        stock_event["stock_after"],
        stock_event["reason"],
        stock_event["product"]["stock"],
    ) == ("delta", -2, 3, "出库", 3)
    assert (events[5]["from"], events[5]["product"]["status"]) == ("offline", "deleted")
    assert await outbox_rows() == []  # relayed, then deleted


async def test_refused_and_empty_writes_emit_nothing(client: Client) -> None:
    phones = await make_category("手机")
    product = await make_product("P1", phones, stock=1, price=100)
    token = await ops(client)
    path = f"/api/products/{product.id}"
    before = await catalog_state()
    refused: list[tuple[str, str, Any]] = [
        ("POST", f"{path}/online", None),  # already online
        ("POST", f"{path}/stock", {"mode": "delta", "value": -2, "reason": "出库"}),
        ("PATCH", path, {"price": -1}),
        ("PATCH", path, {"channels": []}),
        ("PATCH", path, {"price": 100}),  # no change: no write
        (
            "POST",
            "/api/products",
            {"code": "P1", "name": "x", "category_id": phones.id, "price": 1},
        ),
    ]
    for method, target, body in refused:
        status, _ = await call(client, method, target, token, json=body)
        assert status in (200, 409, 422), (method, target)
    assert await catalog_state() == before
    assert await relayed_events(client) == []


async def test_events_of_one_product_keep_the_order_of_its_writes(client: Client) -> None:
    product = await make_product("P1", await make_category("手机"), stock=20)
    token = await ops(client)
    body = {"mode": "delta", "value": -1, "reason": "出库"}
    await asyncio.gather(
        *(
            call(client, "POST", f"/api/products/{product.id}/stock", token, json=body)
            for _ in range(30)
        )
    )
    events = await relayed_events(client)
    assert [event["stock_after"] for event in events] == list(range(19, -1, -1))
    assert [event["product"]["stock"] for event in events] == list(range(19, -1, -1))
