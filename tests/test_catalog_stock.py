"""Stock adjustments: set and delta, never below zero, atomic under concurrency, every change
in the ledger with the staff member and the reason."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from deer.accounts.models import AuditLog
from deer.catalog.models import Product, StockMovement
from tests.auth_helpers import call, error_code, field_paths, staff_token
from tests.catalog_helpers import Client, catalog_state, make_category, make_product, ops

# Outbox rows stay until the test relays them: no relay runs in the app.
pytestmark = pytest.mark.manual_outbox_relay


def stock_path(product_id: int) -> str:
    return f"/api/products/{product_id}/stock"


async def adjust(
    client: Client, token: str, product_id: int, mode: str, value: int, reason: str
) -> tuple[int, Any]:
    body = {"mode": mode, "value": value, "reason": reason}
    return await call(client, "POST", stock_path(product_id), token, json=body)


async def test_set_and_delta_with_the_ledger(client: Client) -> None:
    product = await make_product("P1", await make_category("手机"), stock=10)
    token = await ops(client)
    status, movement = await adjust(client, token, product.id, "delta", 15, "补货")
    assert status == 200, movement
    assert dt.datetime.fromisoformat(movement.pop("created_at")).tzinfo is not None
    assert movement == {
        "id": movement["id"],
        "product_id": product.id,
        "change": "delta",
        "delta": 15,
        "stock_after": 25,
        "reason": "补货",
        "user": {"id": movement["user"]["id"], "name": "Ops_Lina"},
        "order_id": None,
    }
    status, movement = await adjust(client, token, product.id, "set", 7, "盘点")
    assert (status, movement["change"], movement["delta"], movement["stock_after"]) == (
        200,
        "set",
        -18,
        7,
    )
    status, movement = await adjust(client, token, product.id, "delta", -7, "报损")
    assert (status, movement["stock_after"]) == (200, 0)
    assert (await Product.get(id=product.id)).stock == 0

    before = await catalog_state()
    status, body = await adjust(client, token, product.id, "delta", -1, "出库")
    assert (status, error_code(body)) == (409, "insufficient_stock")
    assert body["error"]["details"] == {"stock": 0, "delta": -1}
    assert await catalog_state() == before

    sales = await staff_token(client, "sales_wang", ["sales"])
    status, ledger = await call(
        client, "GET", f"/api/products/{product.id}/stock-movements", sales, params={"size": 2}
    )
    assert status == 200
    assert (ledger["total"], [m["reason"] for m in ledger["items"]]) == (3, ["报损", "盘点"])
    status, ledger = await call(
        client,
        "GET",
        f"/api/products/{product.id}/stock-movements",
        sales,
        params={"page": 2, "size": 2},
    )
    assert [m["reason"] for m in ledger["items"]] == ["补货"]
    audits = await AuditLog.filter(action="product.stock").order_by("id")
    assert [(a.details["stock"], a.details["reason"]) for a in audits] == [
        ([10, 25], "补货"),
        ([25, 7], "盘点"),
        ([7, 0], "报损"),
    ]


async def test_concurrent_deltas_never_oversell(client: Client) -> None:
    """50 simultaneous `-1` on a stock of 20: exactly 20 succeed, the stock ends at 0."""
    product = await make_product("P1", await make_category("手机"), stock=20)
    token = await ops(client)
    body = {"mode": "delta", "value": -1, "reason": "出库"}
    answers = await asyncio.gather(
        *(call(client, "POST", stock_path(product.id), token, json=body) for _ in range(50))
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [200] * 20 + [409] * 30
    assert {error_code(body) for status, body in answers if status == 409} == {"insufficient_stock"}
    assert (await Product.get(id=product.id)).stock == 0
    movements = await StockMovement.filter(product_id=product.id).order_by("id")
    assert len(movements) == 20
    assert sorted(m.stock_after for m in movements) == list(range(20))
    assert {m.delta for m in movements} == {-1}
    assert await AuditLog.filter(action="product.stock").count() == 20


async def test_concurrent_sets_and_deltas_keep_the_ledger_consistent(client: Client) -> None:
    product = await make_product("P1", await make_category("手机"), stock=100)
    token = await ops(client)
    bodies: list[dict[str, Any]] = [
        *({"mode": "delta", "value": 3, "reason": "补货"} for _ in range(10)),
        *({"mode": "set", "value": 50, "reason": "盘点"} for _ in range(5)),
        *({"mode": "delta", "value": -2, "reason": "出库"} for _ in range(10)),
    ]
    answers = await asyncio.gather(
        *(call(client, "POST", stock_path(product.id), token, json=body) for body in bodies)
    )
    assert {status for status, _ in answers} == {200}
    running = 100
    for movement in await StockMovement.filter(product_id=product.id).order_by(
        "id"
    ):  # each movement applies to the stock the one before it left
        running += movement.delta
        assert movement.stock_after == running
    assert (await Product.get(id=product.id)).stock == running


async def test_bad_stock_input_changes_nothing(client: Client) -> None:
    product = await make_product("P1", await make_category("手机"), stock=5)
    token = await ops(client)
    before = await catalog_state()
    cases: list[tuple[Any, set[str]]] = [
        ({}, {"mode", "value", "reason"}),
        ({"mode": "add", "value": 1, "reason": "x"}, {"mode"}),
        ({"mode": "set", "value": -1, "reason": "x"}, {"value"}),
        ({"mode": "delta", "value": 0, "reason": "x"}, {"value"}),
        ({"mode": "delta", "value": 1.5, "reason": "x"}, {"value"}),
        ({"mode": "delta", "value": 10**12, "reason": "x"}, {"value"}),
        ({"mode": "delta", "value": 1, "reason": "  "}, {"reason"}),
        ({"mode": "delta", "value": 1, "reason": "x" * 257}, {"reason"}),
        ({"mode": "delta", "value": 1, "reason": "x", "user_id": 1}, {"user_id"}),
    ]
    for body, paths in cases:
        status, answer = await call(client, "POST", stock_path(product.id), token, json=body)
        assert (status, field_paths(answer)) == (422, paths), body
    status, answer = await call(
        client, "POST", stock_path(987654), token, json={"mode": "set", "value": 1, "reason": "x"}
    )
    assert (status, error_code(answer)) == (404, "not_found")
    status, answer = await call(client, "GET", "/api/products/987654/stock-movements", token)
    assert (status, error_code(answer)) == (404, "not_found")
    status, answer = await call(
        client, "GET", f"/api/products/{product.id}/stock-movements", token, params={"size": 0}
    )
    assert (status, field_paths(answer)) == (422, {"size"})
    assert await catalog_state() == before
