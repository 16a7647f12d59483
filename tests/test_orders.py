"""Orders through the real app: placing (idempotent, no oversell), the state machine, the
payment timeout, who sees what, the order center's lists and export."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from actors.outbox import events_key
from config.settings import Settings
from deer import keys
from deer.catalog.models import Product, ProductStatus, StockMovement
from deer.shop.models import OrderRequest
from tests.actors_support import eventually
from tests.auth_helpers import make_staff
from tests.shop_support import (
    ADDRESS,
    make_members,
    make_product,
    paid_by_dev,
    place,
    staff_headers,
    stock_of,
    token_of,
)


@pytest.fixture
async def buyer(client: TestClient[Any, Any]) -> dict[str, str]:
    (member,) = await make_members(1)
    return await token_of(client.app, member)


@pytest.fixture
async def ops(client: TestClient[Any, Any]) -> dict[str, str]:
    user = await make_staff("ops_worker", ["ops"])
    return await staff_headers(client.app, user.id, "ops")


async def events_of(redis: Redis, settings: Settings, order_id: int) -> list[str]:
    entries = await redis.xrange(events_key(settings))
    found = []
    for _, fields in entries:
        event = orjson.loads(fields[b"event"])
        if event.get("order_id") == order_id:
            found.append(event["type"])
    return found


async def test_place_an_order_from_lines(
    client: TestClient[Any, Any], buyer: dict[str, str], settings: Settings
) -> None:
    tea = await make_product(stock=10, price=2500, cost=1000, name="西湖龙井")
    cup = await make_product(stock=5, price=800)
    status, order = await place(client, buyer, [(tea.id, 2), (cup.id, 1), (tea.id, 1)])
    assert status == 201, order
    assert order["status"] == "pending_payment"
    assert [(line["product_id"], line["quantity"]) for line in order["lines"]] == [
        (tea.id, 3),
        (cup.id, 1),
    ]
    assert order["lines"][0]["price"] == 2500 and order["lines"][0]["cost"] is None
    assert order["total"] == order["payable"] == 3 * 2500 + 800
    assert order["paid"] == 0 and order["address"]["receiver"] == ADDRESS["receiver"]
    assert len(order["sn"]) == 20 and order["sn"].isdigit()
    assert "payment_due_at" in order["times"]
    assert (await stock_of(tea.id), await stock_of(cup.id)) == (7, 4)
    movements = await StockMovement.filter(order_id=order["id"]).order_by("product_id")
    assert [(m.product_id, m.change, m.delta) for m in movements] == [
        (tea.id, "reserve", -3),
        (cup.id, "reserve", -1),
    ]

    listed = await (await client.get("/api/orders", headers=buyer)).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == order["id"]
    again = await (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()
    assert again == order

    redis = client.app[keys.REDIS]

    async def published() -> bool:
        return await events_of(redis, settings, order["id"]) == ["order.created"]

    await eventually(published, 5, "order.created in deer:events")


async def test_same_idempotency_key_twenty_times_at_once_is_one_order(
    client: TestClient[Any, Any], buyer: dict[str, str]
) -> None:
    product = await make_product(stock=10)
    key = uuid.uuid4().hex
    answers = await asyncio.gather(
        *(place(client, buyer, [(product.id, 2)], key=key) for _ in range(20))
    )
    assert {status for status, _ in answers} == {201}
    assert len({order["id"] for _, order in answers}) == 1
    assert await stock_of(product.id) == 8
    assert await OrderRequest.all().count() == 1

    status, refused = await place(client, buyer, [(product.id, 3)], key=key)
    assert status == 409 and refused["error"]["code"] == "idempotency_key_reused"
    assert await stock_of(product.id) == 8


async def test_no_oversell_with_200_buyers_racing_for_50(client: TestClient[Any, Any]) -> None:
    product = await make_product(stock=50, price=9900)
    buyers = [await token_of(client.app, member) for member in await make_members(200)]
    answers = await asyncio.gather(
        *(place(client, headers, [(product.id, 1)]) for headers in buyers)
    )
    statuses = [status for status, _ in answers]
    assert statuses.count(201) == 50, statuses
    assert statuses.count(409) == 150
    refusals = {body["error"]["code"] for status, body in answers if status == 409}
    assert refusals == {"out_of_stock"}
    assert await stock_of(product.id) == 0
    assert await StockMovement.filter(product_id=product.id, change="reserve").count() == 50

    placed = [
        (headers, body)
        for headers, (status, body) in zip(buyers, answers, strict=True)
        if status == 201
    ]
    cancels = await asyncio.gather(
        *(
            client.post(f"/api/orders/{body['id']}/cancel", json={}, headers=headers)
            for headers, body in placed[:10]
        )
    )
    assert [response.status for response in cancels] == [200] * 10
    assert await stock_of(product.id) == 10


async def test_state_machine_refuses_illegal_transitions(
    client: TestClient[Any, Any], buyer: dict[str, str], ops: dict[str, str]
) -> None:
    product = await make_product(stock=5)
    _, order = await place(client, buyer, [(product.id, 1)])
    path = f"/api/orders/{order['id']}"

    async def refused(method_path: str, headers: dict[str, str], body: Any = None) -> str:
        response = await client.post(method_path, json=body or {}, headers=headers)
        assert response.status == 409, await response.text()
        payload = await response.json()
        return str(payload["error"]["code"])

    ship = {"carrier": "顺丰", "tracking_no": "SF1234567890"}
    assert await refused(f"{path}/ship", ops, ship) == "illegal_transition"
    assert await refused(f"{path}/confirm", buyer) == "illegal_transition"
    assert await refused(f"{path}/refunds", ops, {"amount": 100, "reason": "质量问题"}) == (
        "illegal_transition"
    )
    unchanged = await (await client.get(path, headers=buyer)).json()
    assert unchanged["status"] == "pending_payment"

    paid = await paid_by_dev(client.app, order)
    assert paid["status"] == "paid" and paid["paid"] == order["payable"]
    assert await refused(f"{path}/cancel", buyer) == "illegal_transition"
    shipped = await client.post(f"{path}/ship", json=ship, headers=ops)
    assert shipped.status == 200
    body = await shipped.json()
    assert body["status"] == "shipped" and body["shipment"]["tracking_no"] == "SF1234567890"
    assert body["lines"][0]["cost"] == 1200  # staff see costs
    confirmed = await client.post(f"{path}/confirm", json={}, headers=buyer)
    assert (await confirmed.json())["status"] == "completed"
    assert await refused(f"{path}/ship", ops, ship) == "illegal_transition"

    _, second = await place(client, buyer, [(product.id, 1)])
    cancelled = await client.post(f"/api/orders/{second['id']}/cancel", json={}, headers=buyer)
    assert (await cancelled.json())["status"] == "cancelled"
    assert await refused(f"/api/orders/{second['id']}/cancel", buyer) == "illegal_transition"


async def test_a_member_cannot_see_or_touch_another_members_order(
    client: TestClient[Any, Any], buyer: dict[str, str]
) -> None:
    product = await make_product(stock=5)
    _, order = await place(client, buyer, [(product.id, 1)])
    (other,) = await make_members(1)
    stranger = await token_of(client.app, other)
    path = f"/api/orders/{order['id']}"
    assert (await client.get(path, headers=stranger)).status == 404
    assert (await client.post(f"{path}/cancel", json={}, headers=stranger)).status == 404
    assert (await client.post(f"{path}/confirm", json={}, headers=stranger)).status == 404
    listed = await (await client.get("/api/orders", headers=stranger)).json()
    assert listed == {"items": [], "total": 0, "page": 1, "size": 20}
    assert (await (await client.get(path, headers=buyer)).json())["status"] == "pending_payment"


@pytest.mark.parametrize(
    ("body", "headers_extra", "status", "code"),
    [
        ({"lines": [{"product_id": 1, "quantity": 1}]}, {}, 422, "validation_error"),
        ({"address": ADDRESS, "lines": []}, {}, 422, "validation_error"),
        ({"address": ADDRESS, "lines": [{"product_id": 1, "quantity": 100}]}, {}, 422, None),
        ({"address": {**ADDRESS, "mobile": "call me"}}, {}, 422, None),
        ({"address": ADDRESS, "lines": [{"product_id": 0, "quantity": 1}]}, {}, 422, None),
        ({"address": ADDRESS, "channel": "tv"}, {}, 422, None),
        ({"address": ADDRESS, "surprise": 1}, {}, 422, None),
        ({"address": ADDRESS}, {"Idempotency-Key": None}, 422, "idempotency_key_required"),
        ({"address": ADDRESS}, {"Idempotency-Key": "bad key"}, 422, "idempotency_key_required"),
        ({"address": ADDRESS}, {}, 422, "empty_order"),  # an empty cart
    ],
)
async def test_bad_order_requests_change_nothing(
    client: TestClient[Any, Any],
    buyer: dict[str, str],
    body: dict[str, Any],
    headers_extra: dict[str, str | None],
    status: int,
    code: str | None,
) -> None:
    product = await make_product(stock=3)
    headers = {**buyer, "Idempotency-Key": uuid.uuid4().hex}
    for name, value in headers_extra.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    response = await client.post("/api/orders", json=body, headers=headers)
    assert response.status == status, await response.text()
    if code is not None:
        assert (await response.json())["error"]["code"] == code
    assert await stock_of(product.id) == 3
    assert (await (await client.get("/api/orders", headers=buyer)).json())["total"] == 0


async def test_unsellable_products_are_refused(
    client: TestClient[Any, Any], buyer: dict[str, str]
) -> None:
    offline = await make_product(stock=3, status=ProductStatus.OFFLINE)
    web_only = await make_product(stock=3, channels=("web",))
    for lines, reason in (
        ([(offline.id, 1)], "not_online"),
        ([(999_999, 1)], "missing"),
    ):
        status, body = await place(client, buyer, lines)
        assert status == 409 and body["error"]["code"] == "not_sellable"
        assert body["error"]["details"]["products"][0]["reason"] == reason
    status, body = await place(client, buyer, [(web_only.id, 1)], channel="mini_program")
    assert status == 409 and body["error"]["details"]["products"][0]["reason"] == "channel"
    status, body = await place(client, buyer, [(web_only.id, 4)])
    assert status == 409 and body["error"]["code"] == "out_of_stock"
    assert body["error"]["details"]["products"] == [
        {"product_id": web_only.id, "wanted": 4, "available": 3}
    ]
    assert await stock_of(web_only.id) == 3


async def test_staff_cannot_shop_and_anonymous_must_sign_in(
    client: TestClient[Any, Any], ops: dict[str, str]
) -> None:
    product = await make_product(stock=3)
    status, body = await place(client, ops, [(product.id, 1)])
    assert status == 403 and body["error"]["code"] == "forbidden"  # no policy for ops
    admin = await make_staff("shop_admin", ["admin"])
    as_admin = await staff_headers(client.app, admin.id, "admin")
    status, body = await place(client, as_admin, [(product.id, 1)])
    assert status == 403 and body["error"]["code"] == "members_only"  # policy yes, kind no
    status, body = await place(client, {}, [(product.id, 1)])
    assert status == 401
    assert await stock_of(product.id) == 3


async def test_unpaid_order_is_cancelled_by_its_reminder_across_a_restart(
    aiohttp_client: Any, make_settings: Any
) -> None:
    from deer.app import create_app

    settings = make_settings(order_payment_timeout=2.0)
    first = await aiohttp_client(create_app(settings))
    product = await make_product(stock=4)
    (member,) = await make_members(1)
    _, order = await place(first, await token_of(first.app, member), [(product.id, 3)])
    assert await stock_of(product.id) == 1
    await first.close()  # the process goes away before the timeout

    second = await aiohttp_client(create_app(settings))
    headers = await token_of(second.app, member)

    async def cancelled() -> bool:
        response = await second.get(f"/api/orders/{order['id']}", headers=headers)
        body = await response.json()
        assert response.status == 200, body
        return bool(body["status"] == "cancelled")

    await eventually(cancelled, 20, "the payment timeout cancels the order")
    assert await stock_of(product.id) == 4
    final = await (await second.get(f"/api/orders/{order['id']}", headers=headers)).json()
    assert final["cancel"]["by"] == "timeout"


async def test_admin_lists_filters_and_exports(
    client: TestClient[Any, Any], buyer: dict[str, str], ops: dict[str, str]
) -> None:
    product = await make_product(stock=20, name="=SUM(A1)")  # a formula must not run in Excel
    placed = [(await place(client, buyer, [(product.id, 1)]))[1] for _ in range(3)]
    await paid_by_dev(client.app, placed[0])
    everything = await (await client.get("/api/admin/orders", headers=ops)).json()
    assert [order["id"] for order in everything["items"]] == [o["id"] for o in reversed(placed)]
    paid = await (await client.get("/api/admin/orders?status=paid", headers=ops)).json()
    assert [order["id"] for order in paid["items"]] == [placed[0]["id"]]
    by_sn = await client.get(f"/api/admin/orders?sn={placed[1]['sn']}", headers=ops)
    assert [order["id"] for order in (await by_sn.json())["items"]] == [placed[1]["id"]]
    member_id = placed[0]["member_id"]
    mine = await client.get(f"/api/admin/orders?member_id={member_id}&size=2", headers=ops)
    assert (await mine.json())["total"] == 3 and len((await mine.json())["items"]) == 2
    none = await client.get(
        "/api/admin/orders?created_from=2001-01-01T00:00:00Z&created_to=2001-01-02T00:00:00Z",
        headers=ops,
    )
    assert (await none.json())["total"] == 0
    bad = await client.get("/api/admin/orders?sn=12&status=lost", headers=ops)
    assert bad.status == 422

    exported = await client.get("/api/admin/orders/export?status=pending_payment", headers=ops)
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    text = (await exported.read()).decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0][:4] == ["id", "sn", "created_at", "status"]
    assert sorted(int(row[0]) for row in rows[1:]) == sorted(o["id"] for o in placed[1:])
    assert all(row[6].startswith("'=SUM") for row in rows[1:])
    assert rows[1][7] == f"{product.price // 100}.{product.price % 100:02d}"


async def test_product_unchanged_by_a_refused_order(
    client: TestClient[Any, Any], buyer: dict[str, str]
) -> None:
    product = await make_product(stock=2)
    before = await Product.get(id=product.id)
    status, _ = await place(client, buyer, [(product.id, 3)])
    assert status == 409
    after = await Product.get(id=product.id)
    assert (after.stock, after.sales, after.updated_at) == (
        before.stock,
        before.sales,
        before.updated_at,
    )
    assert await StockMovement.filter(product_id=product.id).count() == 0


async def test_a_shipped_order_completes_by_itself_after_the_setting(
    aiohttp_client: Any, make_settings: Any
) -> None:
    from deer.app import create_app

    client = await aiohttp_client(create_app(make_settings(order_auto_complete=1.0)))
    product = await make_product(stock=3)
    (member,) = await make_members(1)
    buyer = await token_of(client.app, member)
    _, order = await place(client, buyer, [(product.id, 1)])
    await paid_by_dev(client.app, order)
    user = await make_staff("shipper", ["ops"])
    ops = await staff_headers(client.app, user.id, "ops")
    ship = {"carrier": "中通快递", "tracking_no": "ZT7700000001"}
    shipped = await client.post(f"/api/orders/{order['id']}/ship", json=ship, headers=ops)
    assert (await shipped.json())["status"] == "shipped"

    async def completed() -> bool:
        response = await client.get(f"/api/orders/{order['id']}", headers=buyer)
        return bool((await response.json())["status"] == "completed")

    await eventually(completed, 15, "the auto-complete reminder completes the order")
    final = await (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()
    assert "completed_at" in final["times"]
    late = await client.post(f"/api/orders/{order['id']}/confirm", json={}, headers=buyer)
    assert (await late.json())["error"]["code"] == "illegal_transition"
