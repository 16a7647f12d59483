"""Helpers of the shop's tests: products on sale, members with tokens, orders placed."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from typing import Any, Final

from aiohttp import web
from aiohttp.test_utils import TestClient

from deer import keys
from deer.accounts.models import Member
from deer.accounts.tokens import Subject
from deer.catalog.models import Category, Product, ProductStatus
from deer.shop import orders

ADDRESS: Final = {
    "receiver": "王小明",
    "mobile": "13800138000",
    "province": "浙江省",
    "city": "杭州市",
    "district": "西湖区",
    "detail": "文三路 100 号 3 幢 502",
}
_codes = itertools.count(1)


async def make_product(
    *,
    stock: int = 100,
    price: int = 1990,
    cost: int = 1200,
    name: str | None = None,
    status: ProductStatus = ProductStatus.ONLINE,
    channels: Sequence[str] = ("web", "mini_program"),
) -> Product:
    category = await Category.filter(name="测试").first() or await Category.create(name="测试")
    number = next(_codes)
    return await Product.create(
        code=f"T{number:05d}",
        name=name or f"测试商品 {number}",
        category=category,
        price=price,
        cost=cost,
        stock=stock,
        channels=list(channels),
        status=status,
        images=[f"https://img.example.com/{number}.jpg"],
    )


async def make_members(count: int) -> list[Member]:
    """Members without passwords (fast: no argon2), for tokens minted directly."""
    batch = uuid.uuid4().hex[:6]
    await Member.bulk_create(
        [Member(name=f"买家{index}", mobile=f"139{batch[:4]}{index:04d}") for index in range(count)]
    )
    return await Member.filter(mobile__startswith=f"139{batch[:4]}").order_by("id")


async def token_of(app: web.Application, member: Member) -> dict[str, str]:
    """Bearer headers of a session of the member."""
    tokens = await app[keys.TOKENS].open_session(Subject("member", member.id, ("member",), None, 0))
    return {"Authorization": f"Bearer {tokens.access_token}"}


async def staff_headers(app: web.Application, user_id: int, role: str) -> dict[str, str]:
    tokens = await app[keys.TOKENS].open_session(Subject("staff", user_id, (role,), None, 0))
    return {"Authorization": f"Bearer {tokens.access_token}"}


async def place(
    client: TestClient[Any, Any],
    headers: dict[str, str],
    lines: Sequence[tuple[int, int]] | None,
    *,
    key: str | None = None,
    **extra: Any,
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"address": ADDRESS, **extra}
    if lines is not None:
        body["lines"] = [{"product_id": p, "quantity": q} for p, q in lines]
    response = await client.post(
        "/api/orders",
        json=body,
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )
    payload: dict[str, Any] = await response.json()
    return response.status, payload


async def paid_by_dev(app: web.Application, order: dict[str, Any]) -> dict[str, Any]:
    """Mark an order paid as a verified payment notify would (provider `dev`)."""
    return await orders.command(
        app[keys.ACTORS],
        order["id"],
        "paid",
        provider="dev",
        transaction_id=f"dev-{order['sn']}",
        amount=order["payable"],
    )


async def stock_of(product_id: int) -> int:
    product = await Product.get(id=product_id)
    stock: int = product.stock
    return stock
