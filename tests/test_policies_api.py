"""Policy admin API: list, add, remove casbin rules; every process applies a change within a
second; admins cannot lock themselves out of the policies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from deer.access.models import PolicyRule
from deer.access.policy import default_rules
from deer.accounts.models import AuditLog
from deer.app import create_app
from tests.auth_helpers import call, error_code, field_paths, member_token, staff_token

Client = TestClient[Any, Any]
ADMIN_ALL = ("p", "admin", "/api/*", "GET|POST|PUT|PATCH|DELETE")
OPS_READS_ROLES = {"ptype": "p", "v0": "ops", "v1": "/api/admin/roles", "v2": "GET"}


@pytest.fixture
async def root(client: Client) -> str:
    """The access token of an admin, `root`."""
    return await staff_token(client, "root", ["admin"])


async def state() -> tuple[Any, ...]:
    return (
        await PolicyRule.all().order_by("id").values(),
        await AuditLog.exclude(action__startswith="auth.").count(),
    )


async def rule_id(ptype: str, v0: str, v1: str, v2: str = "") -> int:
    row = await PolicyRule.get(ptype=ptype, v0=v0, v1=v1, v2=v2)
    found: int = row.id
    return found


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 1.0) -> bool:
    """Whether `check` turns true within `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        if await check():
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.02)


async def test_the_list_shows_shipped_rules(client: Client, root: str) -> None:
    shipped = default_rules()
    status, body = await call(client, "GET", "/api/admin/policies", root, params={"size": 100})
    assert status == 200
    assert body["total"] == len(shipped) == len(body["items"])
    assert {(r["ptype"], r["v0"], r["v1"], r["v2"]) for r in body["items"]} == set(shipped)
    assert {(r["source"], r["removed"]) for r in body["items"]} == {("default", False)}
    assert set(body["items"][0]) == {
        "id",
        "ptype",
        "v0",
        "v1",
        "v2",
        "source",
        "removed",
        "created_at",
    }
    _, groups = await call(client, "GET", "/api/admin/policies", root, params={"ptype": "g"})
    assert {(r["v0"], r["v1"]) for r in groups["items"]} == {
        ("sales_manager", "staff"),
        ("sales", "staff"),
        ("ops", "staff"),
    }
    _, managers = await call(
        client, "GET", "/api/admin/policies", root, params={"v0": "sales_manager"}
    )
    assert managers["total"] == sum(1 for rule in shipped if rule[1] == "sales_manager")
    _, added = await call(client, "GET", "/api/admin/policies", root, params={"source": "admin"})
    assert added == {"items": [], "total": 0, "page": 1, "size": 20}


async def test_adding_a_rule_grants_at_once(client: Client, root: str) -> None:
    ops = await staff_token(client, "lina", ["ops"])
    assert (await call(client, "GET", "/api/admin/roles", ops))[0] == 403
    response = await client.post(
        "/api/admin/policies",
        json=OPS_READS_ROLES,
        headers={"Authorization": f"Bearer {root}", "X-Request-ID": "policy-1"},
    )
    assert response.status == 201
    body = await response.json()
    assert {k: v for k, v in body.items() if k != "created_at"} == {
        "id": body["id"],
        "ptype": "p",
        "v0": "ops",
        "v1": "/api/admin/roles",
        "v2": "GET",
        "source": "admin",
        "removed": False,
    }
    assert (await call(client, "GET", "/api/admin/roles", ops))[0] == 200
    assert (await call(client, "POST", "/api/admin/roles", ops, json={}))[0] == 403
    [entry] = await AuditLog.filter(action="policy.add")
    assert (entry.target_type, entry.target_id, entry.request_id) == (
        "policy",
        str(body["id"]),
        "policy-1",
    )
    assert entry.details == {
        "ptype": "p",
        "v0": "ops",
        "v1": "/api/admin/roles",
        "v2": "GET",
        "restored": False,
    }

    status, grouping = await call(
        client, "POST", "/api/admin/policies", root, json={"ptype": "g", "v0": "ops", "v1": "sales"}
    )
    assert (status, grouping["v2"]) == (201, "")


async def test_rule_input_is_checked(client: Client, root: str) -> None:
    await call(client, "POST", "/api/admin/policies", root, json=OPS_READS_ROLES)
    before = await state()
    cases: list[tuple[dict[str, Any], int, str, set[str]]] = [
        ({**OPS_READS_ROLES, "ptype": "x"}, 422, "validation_error", {"ptype"}),
        ({**OPS_READS_ROLES, "v0": "Ops"}, 422, "validation_error", {"v0"}),
        ({**OPS_READS_ROLES, "v1": "api/admin"}, 422, "validation_error", {"v1"}),
        ({**OPS_READS_ROLES, "v1": "/api/admin.roles"}, 422, "validation_error", {"v1"}),
        ({**OPS_READS_ROLES, "v1": "/api/*/roles"}, 422, "validation_error", {"v1"}),
        ({**OPS_READS_ROLES, "v2": "FETCH"}, 422, "validation_error", {"v2"}),
        ({**OPS_READS_ROLES, "v2": "GET|GET"}, 422, "validation_error", {"v2"}),
        ({**OPS_READS_ROLES, "v2": "(GET"}, 422, "validation_error", {"v2"}),
        ({**OPS_READS_ROLES, "v2": ""}, 422, "validation_error", {"v2"}),
        ({"ptype": "g", "v0": "ops", "v1": "/api/x"}, 422, "validation_error", {"v1"}),
        ({"ptype": "g", "v0": "ops", "v1": "sales", "v2": "GET"}, 422, "validation_error", {"v2"}),
        ({"ptype": "g", "v0": "ops", "v1": "ops"}, 422, "validation_error", {"v1"}),
        ({**OPS_READS_ROLES, "v0": "ghost"}, 422, "validation_error", {"v0"}),
        ({**OPS_READS_ROLES, "extra": 1}, 422, "validation_error", {"extra"}),
    ]
    for payload, expected, code, paths in cases:
        status, body = await call(client, "POST", "/api/admin/policies", root, json=payload)
        assert (status, error_code(body), field_paths(body)) == (expected, code, paths), payload
    status, body = await call(client, "POST", "/api/admin/policies", root, json=OPS_READS_ROLES)
    assert (status, error_code(body)) == (409, "policy_exists")
    status, body = await call(
        client,
        "POST",
        "/api/admin/policies",
        root,
        json={"ptype": "p", "v0": "admin", "v1": "/api/*", "v2": "GET|POST|PUT|PATCH|DELETE"},
    )
    assert (status, error_code(body)) == (409, "policy_exists")
    assert await state() == before

    for subject in ("authenticated", "staff"):  # every caller; the group a g rule defines
        rule = {"ptype": "p", "v0": subject, "v1": "/api/catalog/:id", "v2": ".*"}
        status, _ = await call(client, "POST", "/api/admin/policies", root, json=rule)
        assert status == 201, subject


async def test_removing_rules(
    client: Client, root: str, settings: Settings, aiohttp_client: Any
) -> None:
    status, added = await call(client, "POST", "/api/admin/policies", root, json=OPS_READS_ROLES)
    ops = await staff_token(client, "lina", ["ops"])
    manager = await staff_token(client, "wang", ["sales_manager"])
    assert (await call(client, "GET", "/api/admin/roles", ops))[0] == 200

    status, body = await call(client, "DELETE", f"/api/admin/policies/{added['id']}", root)
    assert (status, body) == (204, None)
    assert not await PolicyRule.exists(id=added["id"])
    assert (await call(client, "GET", "/api/admin/roles", ops))[0] == 403

    shipped = await rule_id("p", "sales_manager", "/api/admin/departments", "GET")
    assert (await call(client, "GET", "/api/admin/departments", manager))[0] == 200
    status, _ = await call(client, "DELETE", f"/api/admin/policies/{shipped}", root)
    assert status == 204
    row = await PolicyRule.get(id=shipped)
    assert (row.source, row.removed) == ("default", True)
    assert (await call(client, "GET", "/api/admin/departments", manager))[0] == 403
    entries = await AuditLog.filter(action="policy.remove").order_by("id")
    assert [(e.target_id, e.details["source"]) for e in entries] == [
        (str(added["id"]), "admin"),
        (str(shipped), "default"),
    ]

    before = await state()
    for missing in (shipped, 987654):  # removed already, never existed
        status, body = await call(client, "DELETE", f"/api/admin/policies/{missing}", root)
        assert (status, error_code(body)) == (404, "not_found")
    assert await state() == before

    # A restart (a new process syncing the shipped rules) keeps the removed rule off.
    restarted = await aiohttp_client(create_app(settings))
    assert (await PolicyRule.get(id=shipped)).removed is True
    assert (await call(restarted, "GET", "/api/admin/departments", manager))[0] == 403

    # Adding it again brings the shipped row back.
    status, back = await call(
        client,
        "POST",
        "/api/admin/policies",
        root,
        json={"ptype": "p", "v0": "sales_manager", "v1": "/api/admin/departments", "v2": "GET"},
    )
    assert (status, back["id"], back["source"], back["removed"]) == (201, shipped, "default", False)
    assert (await call(client, "GET", "/api/admin/departments", manager))[0] == 200
    adds = await AuditLog.filter(action="policy.add").order_by("id")
    assert [(e.target_id, e.details["restored"]) for e in adds] == [
        (str(added["id"]), False),
        (str(shipped), True),
    ]


async def test_admins_cannot_lock_themselves_out(client: Client, root: str) -> None:
    admin_all = await rule_id(*ADMIN_ALL)
    before = await state()
    status, body = await call(client, "DELETE", f"/api/admin/policies/{admin_all}", root)
    assert (status, error_code(body)) == (409, "policy_lockout")
    assert await state() == before

    narrow = [
        {"ptype": "p", "v0": "admin", "v1": "/api/admin/policies", "v2": "GET|POST"},
        {"ptype": "p", "v0": "admin", "v1": "/api/admin/policies/:id", "v2": "DELETE"},
    ]
    ids = []
    for rule in narrow:
        status, added = await call(client, "POST", "/api/admin/policies", root, json=rule)
        assert status == 201
        ids.append(added["id"])
    status, _ = await call(client, "DELETE", f"/api/admin/policies/{admin_all}", root)
    assert status == 204
    assert (await call(client, "GET", "/api/admin/users", root))[0] == 403
    assert (await call(client, "GET", "/api/admin/policies", root))[0] == 200
    before = await state()
    for rule_id_ in ids:
        status, body = await call(client, "DELETE", f"/api/admin/policies/{rule_id_}", root)
        assert (status, error_code(body)) == (409, "policy_lockout")
    assert await state() == before


async def test_a_change_reaches_another_process_within_a_second(
    client: Client, root: str, settings: Settings, aiohttp_client: Any
) -> None:
    other: Client = await aiohttp_client(create_app(settings))
    ops = await staff_token(client, "lina", ["ops"])

    async def other_allows() -> bool:
        return (await call(other, "GET", "/api/admin/roles", ops))[0] == 200

    async def other_refuses() -> bool:
        return (await call(other, "GET", "/api/admin/roles", ops))[0] == 403

    assert await other_refuses()
    status, added = await call(client, "POST", "/api/admin/policies", root, json=OPS_READS_ROLES)
    assert status == 201
    assert await eventually(other_allows)
    status, _ = await call(client, "DELETE", f"/api/admin/policies/{added['id']}", root)
    assert status == 204
    assert await eventually(other_refuses)


async def test_checking_what_a_role_may_do(client: Client, root: str) -> None:
    async def allowed(role: str, path: str, method: str) -> bool:
        params = {"role": role, "path": path, "method": method}
        status, body = await call(client, "GET", "/api/admin/policies/check", root, params=params)
        assert status == 200, body
        result: bool = body["allowed"]
        return result

    assert await allowed("admin", "/api/admin/users/{id}", "DELETE")
    assert await allowed("sales_manager", "/api/admin/users/{id}", "GET")
    assert await allowed("sales_manager", "/api/admin/users/:id", "GET")
    assert not await allowed("sales_manager", "/api/admin/users/{id}", "PATCH")
    assert await allowed("sales", "/api/admin/members", "GET")  # through the staff group
    assert await allowed("member", "/api/auth/me", "GET")  # every signed-in caller
    assert not await allowed("member", "/api/admin/members", "GET")
    status, body = await call(
        client,
        "GET",
        "/api/admin/policies/check",
        root,
        params={"role": "X", "path": "api", "method": "FETCH"},
    )
    assert (status, field_paths(body)) == (422, {"role", "path", "method"})


@pytest.mark.parametrize("caller", ["sales_manager", "sales", "ops", "member", "anonymous"])
async def test_callers_without_the_right_are_refused(client: Client, caller: str) -> None:
    token: str | None = None
    if caller == "member":
        token = await member_token(client, "13700000001")
    elif caller != "anonymous":
        token = await staff_token(client, f"{caller}_user", [caller])
    admin_all = await rule_id(*ADMIN_ALL)
    before = await state()
    for method, path, payload in (
        ("GET", "/api/admin/policies", None),
        ("GET", "/api/admin/policies/check?role=ops&path=/api&method=GET", None),
        ("POST", "/api/admin/policies", {**OPS_READS_ROLES, "v0": caller}),
        ("DELETE", f"/api/admin/policies/{admin_all}", None),
    ):
        status, body = await call(client, method, path, token, json=payload)
        expected = (401, "unauthorized") if token is None else (403, "forbidden")
        assert (status, error_code(body)) == expected, (method, path)
    assert await state() == before
