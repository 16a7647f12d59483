"""Admin API of the organisation: departments (flat and as a tree), positions, roles."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from deer.access.models import PolicyRule
from deer.accounts.models import AuditLog, Department, Position, Role, User
from deer.accounts.service import BUILTIN_ROLES
from tests.auth_helpers import (
    call,
    caller_token,
    error_code,
    field_paths,
    make_staff,
    root_fixture,  # noqa: F401 - the `root` fixture
    sign_in,
)

Client = TestClient[Any, Any]


async def state() -> tuple[Any, ...]:
    """Every row an organisation write could change."""
    return (
        await Department.all().order_by("id").values(),
        await Position.all().order_by("id").values(),
        await Role.all().order_by("id").values(),
        await User.all().order_by("id").values("id", "department_id", "position_id"),
        await PolicyRule.all().order_by("id").values(),
        await AuditLog.exclude(action__startswith="auth.").count(),
    )


def strip_times(value: Any) -> Any:
    """The body with every `created_at` checked as a zoned time and removed."""
    if isinstance(value, list):
        return [strip_times(item) for item in value]
    if isinstance(value, dict):
        if "created_at" in value:
            assert dt.datetime.fromisoformat(value["created_at"]).tzinfo is not None
        return {k: strip_times(v) for k, v in value.items() if k != "created_at"}
    return value


async def actions() -> list[tuple[str, str]]:
    rows = await AuditLog.exclude(action__startswith="auth.").order_by("id")
    return [(row.action, row.target_id) for row in rows]


# --- departments -------------------------------------------------------------------------


async def test_departments_flat_and_as_a_tree(client: Client, root: str) -> None:
    async def create(**body: Any) -> dict[str, Any]:
        status, created = await call(client, "POST", "/api/admin/departments", root, json=body)
        assert status == 201, created
        assert isinstance(created, dict)
        return created

    head = await create(name="总经办")
    ops = await create(name="运营部", parent_id=head["id"], sort=2)
    sales = await create(name="销售部", parent_id=head["id"], sort=1)
    east = await create(name="华东组", parent_id=sales["id"])
    wang = await make_staff("wang", ["sales_manager"], sales["id"], name="王芳")
    await make_staff("zhao", ["sales"], sales["id"])
    status, body = await call(
        client, "PATCH", f"/api/admin/departments/{sales['id']}", root, json={"manager_id": wang.id}
    )
    assert status == 200, body
    assert strip_times(east) == {
        "id": east["id"],
        "name": "华东组",
        "parent_id": sales["id"],
        "manager": None,
        "sort": 0,
        "user_count": 0,
    }

    status, flat = await call(client, "GET", "/api/admin/departments", root)
    assert status == 200
    assert (flat["total"], flat["page"], flat["size"]) == (4, 1, 20)
    assert [(d["name"], d["parent_id"]) for d in flat["items"]] == [
        ("总经办", None),
        ("华东组", sales["id"]),
        ("销售部", head["id"]),
        ("运营部", head["id"]),
    ]
    _, children = await call(
        client, "GET", "/api/admin/departments", root, params={"parent_id": head["id"]}
    )
    assert [d["name"] for d in children["items"]] == ["销售部", "运营部"]
    _, found = await call(client, "GET", "/api/admin/departments", root, params={"q": "华东"})
    assert [d["id"] for d in found["items"]] == [east["id"]]

    status, tree = await call(client, "GET", "/api/admin/departments/tree", root)
    assert status == 200
    assert strip_times(tree) == {
        "items": [
            {
                "id": head["id"],
                "name": "总经办",
                "parent_id": None,
                "manager": None,
                "sort": 0,
                "user_count": 0,
                "children": [
                    {
                        "id": sales["id"],
                        "name": "销售部",
                        "parent_id": head["id"],
                        "manager": {"id": wang.id, "name": "王芳"},
                        "sort": 1,
                        "user_count": 2,
                        "children": [
                            {
                                "id": east["id"],
                                "name": "华东组",
                                "parent_id": sales["id"],
                                "manager": None,
                                "sort": 0,
                                "user_count": 0,
                                "children": [],
                            }
                        ],
                    },
                    {
                        "id": ops["id"],
                        "name": "运营部",
                        "parent_id": head["id"],
                        "manager": None,
                        "sort": 2,
                        "user_count": 0,
                        "children": [],
                    },
                ],
            }
        ]
    }
    status, one = await call(client, "GET", f"/api/admin/departments/{sales['id']}", root)
    assert (status, one["user_count"], one["manager"]["id"]) == (200, 2, wang.id)
    status, body = await call(client, "GET", "/api/admin/departments/987654", root)
    assert (status, error_code(body)) == (404, "not_found")
    assert [action for action, _ in await actions()] == [
        "department.create",
        "department.create",
        "department.create",
        "department.create",
        "department.update",
    ]


async def test_department_names_are_unique_per_parent(client: Client, root: str) -> None:
    head = await Department.create(name="总经办")
    sales = await Department.create(name="销售部", parent=head)
    await Department.create(name="华东组", parent=sales)
    before = await state()
    for body in (
        {"name": "总经办"},
        {"name": "销售部", "parent_id": head.id},
        {"name": " 华东组 ", "parent_id": sales.id},
    ):
        status, answer = await call(client, "POST", "/api/admin/departments", root, json=body)
        assert (status, error_code(answer)) == (409, "department_name_taken"), body
    status, answer = await call(
        client, "PATCH", f"/api/admin/departments/{head.id}", root, json={"name": "总经办"}
    )
    assert status == 200  # its own name
    other = await Department.create(name="运营部", parent=head)
    before = await state()
    status, answer = await call(
        client, "PATCH", f"/api/admin/departments/{other.id}", root, json={"name": "销售部"}
    )
    assert (status, error_code(answer)) == (409, "department_name_taken")
    assert await state() == before
    status, answer = await call(
        client,
        "POST",
        "/api/admin/departments",
        root,
        json={"name": "华东组", "parent_id": head.id},
    )
    assert status == 201  # the same name under another parent


async def test_department_input_is_checked(client: Client, root: str) -> None:
    gone = await make_staff("gone", ["sales"])
    await User.filter(id=gone.id).update(status="disabled")
    before = await state()
    status, body = await call(
        client,
        "POST",
        "/api/admin/departments",
        root,
        json={"name": "", "parent_id": 0, "sort": "first", "code": "x"},
    )
    assert (status, field_paths(body)) == (422, {"name", "parent_id", "sort", "code"})
    for payload, path in (
        ({"name": "新部门", "parent_id": 987654}, "parent_id"),
        ({"name": "新部门", "manager_id": 987654}, "manager_id"),
        ({"name": "新部门", "manager_id": gone.id}, "manager_id"),
        ({"name": "x" * 65}, "name"),
        ({"name": "a\x00b"}, "name"),
    ):
        status, body = await call(client, "POST", "/api/admin/departments", root, json=payload)
        assert (status, field_paths(body)) == (422, {path}), payload
    assert await state() == before


async def test_moving_and_editing_a_department(client: Client, root: str) -> None:
    head = await Department.create(name="总经办")
    sales = await Department.create(name="销售部", parent=head)
    east = await Department.create(name="华东组", parent=sales)
    wang = await make_staff("wang", ["sales_manager"], sales.id)
    status, body = await call(
        client,
        "PATCH",
        f"/api/admin/departments/{east.id}",
        root,
        json={"parent_id": head.id, "name": "华东销售部", "sort": 5, "manager_id": wang.id},
    )
    assert status == 200
    assert (body["parent_id"], body["name"], body["sort"]) == (head.id, "华东销售部", 5)
    status, body = await call(
        client,
        "PATCH",
        f"/api/admin/departments/{east.id}",
        root,
        json={"parent_id": None, "manager_id": None},
    )
    assert (status, body["parent_id"], body["manager"]) == (200, None, None)
    stored = await Department.get(id=east.id).values("parent_id", "manager_id", "name", "sort")
    assert stored == {"parent_id": None, "manager_id": None, "name": "华东销售部", "sort": 5}
    updates = await AuditLog.filter(action="department.update").order_by("id")
    assert [row.details for row in updates] == [
        {
            "changes": {
                "parent_id": [sales.id, head.id],
                "name": ["华东组", "华东销售部"],
                "sort": [0, 5],
                "manager_id": [None, wang.id],
            }
        },
        {"changes": {"parent_id": [head.id, None], "manager_id": [wang.id, None]}},
    ]


async def test_a_department_cannot_become_its_own_ancestor(client: Client, root: str) -> None:
    head = await Department.create(name="总经办")
    sales = await Department.create(name="销售部", parent=head)
    east = await Department.create(name="华东组", parent=sales)
    before = await state()
    for moved, under in ((head, head), (head, east), (sales, east), (head, sales)):
        status, body = await call(
            client,
            "PATCH",
            f"/api/admin/departments/{moved.id}",
            root,
            json={"parent_id": under.id},
        )
        assert (status, error_code(body)) == (409, "department_cycle"), (moved.name, under.name)
    status, body = await call(
        client, "PATCH", "/api/admin/departments/987654", root, json={"name": "x"}
    )
    assert (status, error_code(body)) == (404, "not_found")
    status, body = await call(
        client, "PATCH", f"/api/admin/departments/{east.id}", root, json={"name": None}
    )
    assert (status, field_paths(body)) == (422, {"name"})
    assert await state() == before


async def test_two_moves_at_once_cannot_make_a_cycle(client: Client, root: str) -> None:
    head = await Department.create(name="总经办")
    sales = await Department.create(name="销售部", parent=head)
    ops = await Department.create(name="运营部", parent=head)
    answers = await asyncio.gather(
        call(
            client, "PATCH", f"/api/admin/departments/{sales.id}", root, json={"parent_id": ops.id}
        ),
        call(
            client, "PATCH", f"/api/admin/departments/{ops.id}", root, json={"parent_id": sales.id}
        ),
    )
    outcomes = sorted((status, body.get("error", {}).get("code")) for status, body in answers)
    assert outcomes == [(200, None), (409, "department_cycle")]
    parents = dict(await Department.all().values_list("name", "parent_id"))
    # One moved under the other, which stayed under 总经办: no cycle.
    assert {parents["销售部"], parents["运营部"]} in ({head.id, ops.id}, {head.id, sales.id})


async def test_only_empty_departments_can_be_deleted(client: Client, root: str) -> None:
    head = await Department.create(name="总经办")
    sales = await Department.create(name="销售部", parent=head)
    staffed = await Department.create(name="运营部", parent=head)
    await make_staff("lina", ["ops"], staffed.id)
    planned = await Department.create(name="客服部", parent=head)
    await Position.create(name="客服专员", department=planned)
    before = await state()
    for department, details in (
        (head, {"children": 3, "users": 0, "positions": 0}),
        (staffed, {"children": 0, "users": 1, "positions": 0}),
        (planned, {"children": 0, "users": 0, "positions": 1}),
    ):
        status, body = await call(client, "DELETE", f"/api/admin/departments/{department.id}", root)
        assert (status, error_code(body)) == (409, "department_not_empty")
        assert body["error"]["details"] == details
    status, body = await call(client, "DELETE", "/api/admin/departments/987654", root)
    assert (status, error_code(body)) == (404, "not_found")
    assert await state() == before

    status, body = await call(client, "DELETE", f"/api/admin/departments/{sales.id}", root)
    assert (status, body) == (204, None)
    assert not await Department.exists(id=sales.id)
    assert await actions() == [("department.delete", str(sales.id))]


# --- positions ---------------------------------------------------------------------------


async def test_positions(client: Client, root: str) -> None:
    sales = await Department.create(name="销售部")
    ops = await Department.create(name="运营部")
    status, seller = await call(
        client,
        "POST",
        "/api/admin/positions",
        root,
        json={"name": "销售专员", "department_id": sales.id, "headcount": 5},
    )
    assert status == 201
    assert strip_times(seller) == {
        "id": seller["id"],
        "name": "销售专员",
        "department": {"id": sales.id, "name": "销售部"},
        "headcount": 5,
        "user_count": 0,
    }
    status, planner = await call(
        client, "POST", "/api/admin/positions", root, json={"name": "运营专员"}
    )
    assert (status, planner["department"], planner["headcount"]) == (201, None, 1)
    await make_staff("li", ["sales"], sales.id, position_id=seller["id"])

    status, listed = await call(client, "GET", "/api/admin/positions", root)
    assert (status, listed["total"]) == (200, 2)
    assert [(p["name"], p["user_count"]) for p in listed["items"]] == [
        ("销售专员", 1),
        ("运营专员", 0),
    ]
    _, in_sales = await call(
        client, "GET", "/api/admin/positions", root, params={"department_id": sales.id}
    )
    assert [p["id"] for p in in_sales["items"]] == [seller["id"]]
    _, by_name = await call(client, "GET", "/api/admin/positions", root, params={"q": "运营"})
    assert [p["id"] for p in by_name["items"]] == [planner["id"]]
    status, one = await call(client, "GET", f"/api/admin/positions/{seller['id']}", root)
    assert (status, one["user_count"]) == (200, 1)

    status, moved = await call(
        client,
        "PATCH",
        f"/api/admin/positions/{planner['id']}",
        root,
        json={"department_id": ops.id, "headcount": 0, "name": "运营主管"},
    )
    assert status == 200
    assert (moved["department"], moved["headcount"], moved["name"]) == (
        {"id": ops.id, "name": "运营部"},
        0,
        "运营主管",
    )
    status, body = await call(client, "DELETE", f"/api/admin/positions/{planner['id']}", root)
    assert (status, body) == (204, None)
    assert await actions() == [
        ("position.create", str(seller["id"])),
        ("position.create", str(planner["id"])),
        ("position.update", str(planner["id"])),
        ("position.delete", str(planner["id"])),
    ]


async def test_position_refusals_change_nothing(client: Client, root: str) -> None:
    seller = await Position.create(name="销售专员")
    await make_staff("li", ["sales"], position_id=seller.id)
    before = await state()
    status, body = await call(client, "DELETE", f"/api/admin/positions/{seller.id}", root)
    assert (status, error_code(body)) == (409, "position_in_use")
    assert body["error"]["details"] == {"users": 1}
    status, body = await call(
        client, "POST", "/api/admin/positions", root, json={"name": "x", "headcount": -1}
    )
    assert (status, field_paths(body)) == (422, {"headcount"})
    status, body = await call(
        client, "POST", "/api/admin/positions", root, json={"name": "x", "department_id": 987654}
    )
    assert (status, field_paths(body)) == (422, {"department_id"})
    status, body = await call(
        client, "PATCH", f"/api/admin/positions/{seller.id}", root, json={"headcount": None}
    )
    assert (status, field_paths(body)) == (422, {"headcount"})
    for method in ("GET", "PATCH", "DELETE"):
        status, body = await call(
            client,
            method,
            "/api/admin/positions/987654",
            root,
            json={} if method == "PATCH" else None,
        )
        assert (status, error_code(body)) == (404, "not_found"), method
    assert await state() == before


# --- roles -------------------------------------------------------------------------------


async def test_roles_with_user_counts(client: Client, root: str) -> None:
    await make_staff("wang", ["sales_manager", "sales"])
    await make_staff("li", ["sales"])
    status, body = await call(
        client, "POST", "/api/admin/roles", root, json={"code": "finance", "name": "财务"}
    )
    assert status == 201
    assert body == {
        "id": body["id"],
        "code": "finance",
        "name": "财务",
        "builtin": False,
        "user_count": 0,
    }
    status, listed = await call(client, "GET", "/api/admin/roles", root)
    assert status == 200
    assert listed["total"] == len(BUILTIN_ROLES) + 1
    assert [(r["code"], r["name"], r["builtin"], r["user_count"]) for r in listed["items"]] == [
        ("admin", "管理员", True, 1),
        ("sales_manager", "销售经理", True, 1),
        ("sales", "销售", True, 2),
        ("ops", "运营", True, 0),
        ("member", "会员", True, 0),
        ("finance", "财务", False, 0),
    ]
    status, renamed = await call(
        client, "PATCH", f"/api/admin/roles/{body['id']}", root, json={"name": "财务部"}
    )
    assert (status, renamed["name"], renamed["code"]) == (200, "财务部", "finance")
    status, one = await call(client, "GET", f"/api/admin/roles/{body['id']}", root)
    assert (status, one["name"]) == (200, "财务部")
    entries = await AuditLog.filter(action__startswith="role.").order_by("id")
    assert [(e.action, e.details) for e in entries] == [
        ("role.create", {"code": "finance", "name": "财务"}),
        ("role.update", {"changes": {"name": ["财务", "财务部"]}}),
    ]


async def test_role_refusals_change_nothing(client: Client, root: str) -> None:
    await Role.create(code="finance", name="财务")
    sales = await Role.get(code="sales")
    admin = await Role.get(code="admin")
    await make_staff("li", ["sales"])
    before = await state()
    for payload, paths in (
        ({"code": "Finance", "name": "x"}, {"code"}),
        ({"code": "f", "name": "x"}, {"code"}),
        ({"code": "x" * 33, "name": "x"}, {"code"}),
        ({"code": "staff", "name": "员工"}, {"code"}),
        ({"code": "authenticated", "name": "x"}, {"code"}),
        ({"code": "hr"}, {"name"}),
    ):
        status, body = await call(client, "POST", "/api/admin/roles", root, json=payload)
        assert (status, field_paths(body)) == (422, paths), payload
    status, body = await call(
        client, "POST", "/api/admin/roles", root, json={"code": "finance", "name": "另一个"}
    )
    assert (status, error_code(body)) == (409, "role_exists")
    status, body = await call(client, "DELETE", f"/api/admin/roles/{admin.id}", root)
    assert (status, error_code(body)) == (409, "builtin_role")
    status, body = await call(client, "DELETE", f"/api/admin/roles/{sales.id}", root)
    assert (status, error_code(body)) == (409, "builtin_role")
    status, body = await call(
        client, "PATCH", f"/api/admin/roles/{sales.id}", root, json={"code": "seller"}
    )
    assert (status, field_paths(body)) == (422, {"code", "name"})
    for method in ("GET", "PATCH", "DELETE"):
        status, body = await call(
            client,
            method,
            "/api/admin/roles/987654",
            root,
            json={"name": "x"} if method == "PATCH" else None,
        )
        assert (status, error_code(body)) == (404, "not_found"), method
    assert await state() == before


async def test_a_role_in_use_stays_and_a_deleted_role_takes_its_rules(
    client: Client, root: str
) -> None:
    finance = await Role.create(code="finance", name="财务")
    rule = {"ptype": "p", "v0": "finance", "v1": "/api/admin/roles", "v2": "GET"}
    status, _ = await call(client, "POST", "/api/admin/policies", root, json=rule)
    assert status == 201
    grouping = {"ptype": "g", "v0": "finance", "v1": "staff"}
    status, _ = await call(client, "POST", "/api/admin/policies", root, json=grouping)
    assert status == 201
    holder = await make_staff("qian", ["finance"])
    token = await sign_in(client, "qian")
    assert (await call(client, "GET", "/api/admin/roles", token))[0] == 200

    before = await state()
    status, body = await call(client, "DELETE", f"/api/admin/roles/{finance.id}", root)
    assert (status, error_code(body)) == (409, "role_in_use")
    assert body["error"]["details"] == {"users": 1}
    assert await state() == before

    await holder.roles.clear()
    status, body = await call(client, "DELETE", f"/api/admin/roles/{finance.id}", root)
    assert (status, body) == (204, None)
    assert not await Role.exists(code="finance")
    assert not await PolicyRule.filter(v0="finance").exists()
    [entry] = await AuditLog.filter(action="role.delete")
    assert entry.details == {"code": "finance", "policies_removed": 2}
    # A new role with the old code starts without the old rights.
    await Role.create(code="finance", name="财务")
    await holder.roles.add(await Role.get(code="finance"))
    fresh = await sign_in(client, "qian")
    assert (await call(client, "GET", "/api/admin/roles", fresh))[0] == 403


async def test_list_queries_are_checked(client: Client, root: str) -> None:
    for path, params, paths in (
        ("/api/admin/departments", {"parent_id": "x", "size": "0"}, {"parent_id", "size"}),
        ("/api/admin/positions", {"department_id": "0", "q": ""}, {"department_id", "q"}),
        ("/api/admin/roles", {"page": "0", "q": "x"}, {"page", "q"}),
    ):
        status, body = await call(client, "GET", path, root, params=params)
        assert (status, error_code(body), field_paths(body)) == (
            422,
            "validation_error",
            paths,
        ), path


# --- who may -----------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["sales_manager", "sales", "ops", "member", "anonymous"])
async def test_callers_without_the_right_are_refused(client: Client, caller: str) -> None:
    head = await Department.create(name="总经办")
    seller = await Position.create(name="销售专员", department=head)
    token = await caller_token(client, caller, head.id)
    finance = await Role.create(code="finance", name="财务")
    reads = [
        ("GET", "/api/admin/departments", None),
        ("GET", "/api/admin/departments/tree", None),
        ("GET", f"/api/admin/departments/{head.id}", None),
        ("GET", "/api/admin/positions", None),
        ("GET", f"/api/admin/positions/{seller.id}", None),
    ]
    writes = [
        ("POST", "/api/admin/departments", {"name": "新部门"}),
        ("PATCH", f"/api/admin/departments/{head.id}", {"name": "改名"}),
        ("DELETE", f"/api/admin/departments/{head.id}", None),
        ("POST", "/api/admin/positions", {"name": "新岗位"}),
        ("PATCH", f"/api/admin/positions/{seller.id}", {"name": "改名"}),
        ("DELETE", f"/api/admin/positions/{seller.id}", None),
        ("GET", "/api/admin/roles", None),
        ("GET", f"/api/admin/roles/{finance.id}", None),
        ("POST", "/api/admin/roles", {"code": "hr", "name": "人事"}),
        ("PATCH", f"/api/admin/roles/{finance.id}", {"name": "改名"}),
        ("DELETE", f"/api/admin/roles/{finance.id}", None),
    ]
    before = await state()
    if caller == "sales_manager":
        for method, path, _ in reads:
            assert (await call(client, method, path, token))[0] == 200, path
    refused = writes if caller == "sales_manager" else reads + writes
    for method, path, payload in refused:
        status, body = await call(client, method, path, token, json=payload)
        expected = (401, "unauthorized") if token is None else (403, "forbidden")
        assert (status, error_code(body)) == expected, (method, path)
    assert await state() == before
