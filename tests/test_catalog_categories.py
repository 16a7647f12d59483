"""Categories: the tree (staff see all of it, members and visitors the enabled part), its
writes (ops and admins), the cycle and sibling-name rules, and when a delete is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deer.accounts.models import AuditLog
from deer.catalog.models import Category, ProductStatus
from tests.auth_helpers import call, caller_token, error_code, field_paths, staff_token
from tests.catalog_helpers import (
    Client,
    catalog_state,
    make_category,
    make_product,
    ops,
    shopper,
)

# Outbox rows stay until the test relays them: no relay runs in the app.
pytestmark = pytest.mark.manual_outbox_relay


def names(nodes: list[dict[str, Any]]) -> list[Any]:
    """The tree as nested (name, children) pairs."""
    return [(node["name"], names(node["children"])) for node in nodes]


async def test_ops_build_the_tree_and_everyone_reads_it(client: Client) -> None:
    token = await ops(client)

    async def create(**body: Any) -> dict[str, Any]:
        status, created = await call(client, "POST", "/api/categories", token, json=body)
        assert status == 201, created
        return created

    digital = await create(name="数码", sort=10)
    home = await create(name="家居", sort=5)
    phones = await create(name="手机", parent_id=digital["id"], sort=2)
    await create(name="耳机", parent_id=digital["id"], sort=1)
    hidden = await create(name="清仓", parent_id=phones["id"], enabled=False)
    await create(name="旧款", parent_id=hidden["id"])
    assert {k: v for k, v in phones.items() if k != "created_at"} == {
        "id": phones["id"],
        "name": "手机",
        "parent_id": digital["id"],
        "sort": 2,
        "enabled": True,
        "product_count": 0,
    }
    await make_product("P1", await Category.get(id=phones["id"]))
    await make_product("P2", await Category.get(id=phones["id"]), status=ProductStatus.DELETED)

    status, tree = await call(client, "GET", "/api/categories", token)
    assert status == 200
    assert names(tree["items"]) == [
        ("家居", []),
        ("数码", [("耳机", []), ("手机", [("清仓", [("旧款", [])])])]),
    ]
    shown_phones = tree["items"][1]["children"][1]
    assert (shown_phones["product_count"], shown_phones["enabled"]) == (1, True)

    expected_for_shoppers = [("家居", []), ("数码", [("耳机", []), ("手机", [])])]
    for caller in (None, await shopper(client)):
        status, tree = await call(client, "GET", "/api/categories", caller)
        assert status == 200
        assert names(tree["items"]) == expected_for_shoppers
        assert set(tree["items"][1]) == {"id", "name", "parent_id", "sort", "children"}

    sales = await staff_token(client, "sales_wang", ["sales"])
    status, tree = await call(client, "GET", "/api/categories", sales)
    assert names(tree["items"])[1][1][1] == ("手机", [("清仓", [("旧款", [])])])

    entries = await AuditLog.filter(action="category.create").order_by("id")
    assert [(e.target_id, e.details["name"]) for e in entries][:2] == [
        (str(digital["id"]), "数码"),
        (str(home["id"]), "家居"),
    ]


async def test_moving_renaming_and_the_cycle_rule(client: Client) -> None:
    token = await ops(client)
    digital = await make_category("数码")
    phones = await make_category("手机", digital)
    old = await make_category("旧款", phones)
    home = await make_category("家居")

    status, moved = await call(
        client, "PATCH", f"/api/categories/{phones.id}", token, json={"parent_id": home.id}
    )
    assert (status, moved["parent_id"]) == (200, home.id)
    status, top = await call(
        client, "PATCH", f"/api/categories/{phones.id}", token, json={"parent_id": None}
    )
    assert (status, top["parent_id"]) == (200, None)

    await make_category("手机", home)
    before = await catalog_state()
    for parent in (phones.id, old.id):
        status, body = await call(
            client, "PATCH", f"/api/categories/{phones.id}", token, json={"parent_id": parent}
        )
        assert (status, error_code(body)) == (409, "category_cycle")
    status, body = await call(
        client, "PATCH", f"/api/categories/{phones.id}", token, json={"parent_id": home.id}
    )
    assert (status, error_code(body)) == (409, "category_name_taken")
    status, body = await call(
        client, "POST", "/api/categories", token, json={"name": "家居", "parent_id": None}
    )
    assert (status, error_code(body)) == (409, "category_name_taken")
    assert await catalog_state() == before

    status, renamed = await call(
        client,
        "PATCH",
        f"/api/categories/{old.id}",
        token,
        json={"name": "经典款", "sort": 3, "enabled": False},
    )
    assert (status, renamed["name"], renamed["sort"], renamed["enabled"]) == (
        200,
        "经典款",
        3,
        False,
    )
    updates = await AuditLog.filter(action="category.update", target_id=str(old.id)).first()
    assert updates is not None
    assert updates.details["changes"] == {
        "name": ["旧款", "经典款"],
        "sort": [0, 3],
        "enabled": [True, False],
    }


async def test_two_crossing_moves_at_once_cannot_make_a_cycle(client: Client) -> None:
    token = await ops(client)
    first, second = await make_category("甲"), await make_category("乙")
    answers = await asyncio.gather(
        call(client, "PATCH", f"/api/categories/{first.id}", token, json={"parent_id": second.id}),
        call(client, "PATCH", f"/api/categories/{second.id}", token, json={"parent_id": first.id}),
    )
    assert sorted(status for status, _ in answers) == [200, 409]
    parents = dict(await Category.all().values_list("id", "parent_id"))
    assert None in parents.values()


async def test_delete_only_an_empty_category(client: Client) -> None:
    token = await ops(client)
    digital = await make_category("数码")
    phones = await make_category("手机", digital)
    gone = await make_product("P1", phones, status=ProductStatus.DELETED)

    before = await catalog_state()
    status, body = await call(client, "DELETE", f"/api/categories/{digital.id}", token)
    assert (status, error_code(body)) == (409, "category_not_empty")
    assert body["error"]["details"] == {"children": 1, "products": 0, "deleted_products": 0}
    status, body = await call(client, "DELETE", f"/api/categories/{phones.id}", token)
    assert (status, error_code(body)) == (409, "category_not_empty")
    assert body["error"]["details"] == {"children": 0, "products": 0, "deleted_products": 1}
    assert await catalog_state() == before

    await gone.delete()
    status, _ = await call(client, "DELETE", f"/api/categories/{phones.id}", token)
    assert status == 204
    status, _ = await call(client, "DELETE", f"/api/categories/{digital.id}", token)
    assert status == 204
    assert await Category.all().count() == 0
    status, body = await call(client, "DELETE", f"/api/categories/{digital.id}", token)
    assert (status, error_code(body)) == (404, "not_found")
    entries = await AuditLog.filter(action="category.delete").order_by("id")
    assert [e.details["name"] for e in entries] == ["手机", "数码"]


async def test_bad_input_changes_nothing(client: Client) -> None:
    token = await ops(client)
    digital = await make_category("数码")
    before = await catalog_state()
    cases: list[tuple[str, str, Any, set[str]]] = [
        ("POST", "/api/categories", {}, {"name"}),
        ("POST", "/api/categories", {"name": "  "}, {"name"}),
        ("POST", "/api/categories", {"name": "数码/手机"}, {"name"}),
        ("POST", "/api/categories", {"name": "x" * 65}, {"name"}),
        ("POST", "/api/categories", {"name": "手机", "parent_id": 0}, {"parent_id"}),
        ("POST", "/api/categories", {"name": "手机", "parent_id": 99999}, {"parent_id"}),
        ("POST", "/api/categories", {"name": "手机", "sort": "first"}, {"sort"}),
        ("POST", "/api/categories", {"name": "手机", "colour": "red"}, {"colour"}),
        ("PATCH", f"/api/categories/{digital.id}", {"name": None}, {"name"}),
        ("PATCH", f"/api/categories/{digital.id}", {"enabled": None}, {"enabled"}),
        ("PATCH", f"/api/categories/{digital.id}", {"parent_id": 424242}, {"parent_id"}),
    ]
    for method, path, body, paths in cases:
        status, answer = await call(client, method, path, token, json=body)
        assert (status, field_paths(answer)) == (422, paths), (body, answer)
    status, answer = await call(client, "PATCH", "/api/categories/424242", token, json={})
    assert (status, error_code(answer)) == (404, "not_found")
    status, answer = await call(client, "PATCH", "/api/categories/abc", token, json={})
    assert (status, error_code(answer)) == (404, "not_found")
    assert await catalog_state() == before


@pytest.mark.parametrize("caller", ["anonymous", "member", "sales", "sales_manager"])
async def test_only_ops_and_admins_write_categories(client: Client, caller: str) -> None:
    token = await caller_token(client, caller)
    digital = await make_category("数码")
    before = await catalog_state()
    expected = 401 if caller == "anonymous" else 403
    for method, path, body in (
        ("POST", "/api/categories", {"name": "手机"}),
        ("PATCH", f"/api/categories/{digital.id}", {"name": "电子"}),
        ("DELETE", f"/api/categories/{digital.id}", None),
    ):
        status, _ = await call(client, method, path, token, json=body)
        assert status == expected, (method, path)
    assert await catalog_state() == before
