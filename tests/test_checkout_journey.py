"""A buyer's whole journey through the real app: register, browse, cart, order, pay (the dev
provider and WeChat Pay against its local fake), ship, confirm, refund; what the admin sees,
what the member earns, and the events in the stream."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from actors.outbox import events_key
from config.settings import Settings
from deer import keys
from deer.accounts.models import Member
from deer.shop.models import PaymentNotice
from tests.actors_support import eventually
from tests.auth_helpers import make_staff
from tests.fakes.wechatpay import FakeWechatPay, tampered, wechatpay_fixture  # noqa: F401
from tests.shop_support import ADDRESS, make_members, make_product, place, staff_headers, stock_of
from tests.shop_support import token_of as member_headers


async def order_events(
    client: TestClient[Any, Any], settings: Settings, order_id: int
) -> list[str]:
    entries = await client.app[keys.REDIS].xrange(events_key(settings))
    kinds = []
    for _, fields in entries:
        event = orjson.loads(fields[b"event"])
        if event.get("order_id") == order_id:
            kinds.append(event["type"])
    return kinds


async def pay(
    client: TestClient[Any, Any], order: dict[str, Any], provider: str, buyer: dict[str, str]
) -> ClientResponse:
    return await client.post(
        f"/api/orders/{order['id']}/pay", json={"provider": provider}, headers=buyer
    )


async def refund_of(
    client: TestClient[Any, Any], path: str, amount: int, ops: dict[str, str]
) -> ClientResponse:
    return await client.post(
        f"{path}/refunds", json={"amount": amount, "reason": "退款"}, headers=ops
    )


async def test_the_whole_journey_with_the_dev_provider(
    client: TestClient[Any, Any], settings: Settings
) -> None:
    tea = await make_product(stock=10, price=12_800, name="明前龙井 250g")
    registered = await client.post(
        "/api/auth/register",
        json={"mobile": "13912345678", "password": "green-tea-2026", "name": "茶友"},
    )
    assert registered.status == 201, await registered.text()
    signed_in = await client.post(
        "/api/auth/login",
        json={"account": "13912345678", "password": "green-tea-2026", "kind": "member"},
    )
    buyer = {"Authorization": f"Bearer {(await signed_in.json())['access_token']}"}

    browsed = await (await client.get("/api/products?q=龙井")).json()
    assert [item["id"] for item in browsed["items"]] == [tea.id]
    added = await client.post(
        "/api/cart/items", json={"product_id": tea.id, "quantity": 2}, headers=buyer
    )
    assert added.status == 200, await added.text()

    status, order = await place(client, buyer, None)  # the cart's selected lines
    assert status == 201, order
    assert order["payable"] == 25_600 and order["lines"][0]["quantity"] == 2
    assert await stock_of(tea.id) == 8

    async def cart_emptied() -> bool:
        cart = await (await client.get("/api/cart", headers=buyer)).json()
        return bool(cart["lines"] == [])

    await eventually(cart_emptied, 5, "the ordered lines leave the cart")

    started = await client.post(
        f"/api/orders/{order['id']}/pay", json={"provider": "dev"}, headers=buyer
    )
    assert started.status == 200, await started.text()
    assert (await started.json())["amount"] == 25_600
    simulated = await client.post(
        "/api/payments/dev/simulate",
        json={"out_trade_no": order["sn"], "amount": order["payable"]},
    )
    assert simulated.status == 200 and (await simulated.json())["status"] == "applied"
    paid = await (await client.get(f"/api/orders/{order['id']}", headers=buyer)).json()
    assert paid["status"] == "paid" and paid["paid"] == 25_600
    member = await Member.get(mobile="13912345678")
    assert (member.condition, member.points, member.total_spent, member.paid_orders) == (
        "formal",
        256,
        25_600,
        1,
    )

    ops_user = await make_staff("warehouse", ["ops"])
    ops = await staff_headers(client.app, ops_user.id, "ops")
    shipped = await client.post(
        f"/api/orders/{order['id']}/ship",
        json={"carrier": "顺丰速运", "tracking_no": "SF1400000001"},
        headers=ops,
    )
    assert (await shipped.json())["status"] == "shipped"
    confirmed = await client.post(f"/api/orders/{order['id']}/confirm", json={}, headers=buyer)
    assert (await confirmed.json())["status"] == "completed"

    seen = await (await client.get(f"/api/admin/orders?sn={order['sn']}", headers=ops)).json()
    assert seen["items"][0]["status"] == "completed"
    assert seen["items"][0]["lines"][0]["cost"] == 1200
    assert (await Member.get(id=member.id)).points == 256

    async def all_published() -> bool:
        return await order_events(client, settings, order["id"]) == [
            "order.created",
            "order.paid",
            "order.shipped",
            "order.completed",
        ]

    await eventually(all_published, 5, "the order's events in deer:events")


@pytest.fixture
async def shop(
    aiohttp_client: Any, settings: Settings, wechatpay: FakeWechatPay
) -> TestClient[Any, Any]:
    from deer.app import create_app

    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(settings.with_values(**wechatpay.settings()))
    )
    return client


async def notify(client: TestClient[Any, Any], headers: dict[str, str], body: bytes) -> int:
    response = await client.post(
        "/api/payments/wechatpay/notify",
        data=body,
        headers={**headers, "Content-Type": "application/json"},
    )
    return response.status


async def test_wechatpay_payment_replayed_fifty_times_applies_once_and_refunds(
    shop: TestClient[Any, Any], wechatpay: FakeWechatPay
) -> None:
    product = await make_product(stock=5, price=9_900)
    (member,) = await make_members(1)
    await Member.filter(id=member.id).update(wechat_openid="o-buyer-1")
    buyer = await member_headers(shop.app, member)
    _, order = await place(shop, buyer, [(product.id, 2)])

    started = await shop.post(
        f"/api/orders/{order['id']}/pay", json={"provider": "wechatpay"}, headers=buyer
    )
    assert started.status == 200, await started.text()
    params = (await started.json())["params"]
    assert set(params) == {"timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["package"].startswith("prepay_id=")

    headers, body = wechatpay.paid(order["sn"])
    forged = await notify(shop, headers, tampered(body))
    assert forged == 401
    path = f"/api/orders/{order['id']}"
    assert (await (await shop.get(path, headers=buyer)).json())["status"] == "pending_payment"

    first = await asyncio.gather(*(notify(shop, headers, body) for _ in range(25)))
    rest = [await notify(shop, headers, body) for _ in range(25)]
    assert set(first + rest) <= {200, 204}
    paid = await (await shop.get(path, headers=buyer)).json()
    assert paid["status"] == "paid" and paid["paid"] == 19_800 and len(paid["payments"]) == 1
    assert await PaymentNotice.filter(order_id=order["id"]).count() == 1
    assert (await Member.get(id=member.id)).points == 198

    ops_user = await make_staff("refunds", ["ops"])
    ops = await staff_headers(shop.app, ops_user.id, "ops")
    refund = await shop.post(
        f"{path}/refunds",
        json={"amount": 9_900, "reason": "少发一件"},
        headers={**ops, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert refund.status == 201, await refund.text()
    refunding = await refund.json()
    assert refunding["status"] == "refunding"
    number = refunding["refunds"][0]["no"]
    refused = await shop.post(
        f"{path}/refunds", json={"amount": 100, "reason": "再退"}, headers=ops
    )
    assert (await refused.json())["error"]["code"] == "refund_in_progress"

    async def submitted() -> bool:
        return number in wechatpay.refunds

    await eventually(submitted, 10, "the refund reaches WeChat Pay")
    assert await notify(shop, *wechatpay.refund_result(number)) in (200, 204)
    partly = await (await shop.get(path, headers=buyer)).json()
    assert (partly["status"], partly["refunded"]) == ("paid", 9_900)
    assert await stock_of(product.id) == 3  # a partial refund does not restock
    assert (await Member.get(id=member.id)).points == 99

    too_much = await shop.post(
        f"{path}/refunds", json={"amount": 9_901, "reason": "多退"}, headers=ops
    )
    assert (await too_much.json())["error"]["code"] == "refund_exceeds_paid"
    rest_refund = await shop.post(
        f"{path}/refunds", json={"amount": 9_900, "reason": "全退"}, headers=ops
    )
    second = (await rest_refund.json())["refunds"][1]["no"]
    await eventually(lambda: _has(wechatpay, second), 10, "the second refund reaches WeChat Pay")
    assert await notify(shop, *wechatpay.refund_result(second)) in (200, 204)
    refunded = await (await shop.get(path, headers=buyer)).json()
    assert (refunded["status"], refunded["refunded"]) == ("refunded", 19_800)
    assert await stock_of(product.id) == 5  # fully refunded before shipping: back in stock
    assert (await Member.get(id=member.id)).points == 0

    async def refunds_published() -> bool:
        kinds = await order_events(shop, shop.app[keys.SETTINGS], order["id"])
        return kinds.count("order.refunded") == 2 and "order.paid" in kinds

    await eventually(refunds_published, 5, "order.paid and two order.refunded in deer:events")


async def _has(wechatpay: FakeWechatPay, number: str) -> bool:
    return number in wechatpay.refunds


async def test_payment_of_the_wrong_amount_or_a_cancelled_order_changes_nothing(
    client: TestClient[Any, Any],
) -> None:
    product = await make_product(stock=5, price=5_000)
    (member,) = await make_members(1)
    buyer = await member_headers(client.app, member)
    _, order = await place(client, buyer, [(product.id, 1)])
    wrong = await client.post(
        "/api/payments/dev/simulate", json={"out_trade_no": order["sn"], "amount": 4_999}
    )
    answer = await wrong.json()
    assert (answer["status"], answer["code"]) == ("refused", "amount_mismatch")
    path = f"/api/orders/{order['id']}"
    assert (await (await client.get(path, headers=buyer)).json())["status"] == "pending_payment"

    await client.post(f"{path}/cancel", json={"reason": "不想要了"}, headers=buyer)
    cancelled = await pay(client, order, "dev", buyer)
    assert cancelled.status == 409
    assert (await cancelled.json())["error"]["code"] == "illegal_transition"
    late = await client.post(
        "/api/payments/dev/simulate", json={"out_trade_no": order["sn"], "amount": 5_000}
    )
    assert (await late.json())["code"] == "illegal_transition"
    final = await (await client.get(path, headers=buyer)).json()
    assert (final["status"], final["paid"]) == ("cancelled", 0)
    settings = client.app[keys.SETTINGS]

    async def cancelled_published() -> bool:
        kinds = await order_events(client, settings, order["id"])
        return kinds == ["order.created", "order.cancelled"]

    await eventually(cancelled_published, 5, "order.cancelled in deer:events")
    assert (await Member.get(id=member.id)).points == 0
    unknown = await client.post(f"{path}/pay", json={"provider": "alipay"}, headers=buyer)
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "unknown_payment_provider"


async def test_wechatpay_needs_a_wechat_account(shop: TestClient[Any, Any]) -> None:
    product = await make_product(stock=5)
    (member,) = await make_members(1)
    buyer = await member_headers(shop.app, member)
    _, order = await place(shop, buyer, [(product.id, 1)])
    pay = await shop.post(
        f"/api/orders/{order['id']}/pay", json={"provider": "wechatpay"}, headers=buyer
    )
    assert pay.status == 409 and (await pay.json())["error"]["code"] == "wechat_not_bound"
    assert ADDRESS["receiver"] == order["address"]["receiver"]
