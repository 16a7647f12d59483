"""Admin API of staff users: list with data scope, create, update, roles, disable/enable,
password reset; refusals change nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from deer.accounts.models import AuditLog, Department, Position, Role, User, UserStatus
from deer.accounts.passwords import verify_password
from tests.auth_helpers import (
    PASSWORD,
    call,
    caller_token,
    error_code,
    field_paths,
    login,
    make_staff,
    root_fixture,  # noqa: F401 - the `root` fixture
    sign_in,
    staff_token,
)

Client = TestClient[Any, Any]
NEW_USER = {
    "username": "zhang.san",
    "name": "张三",
    "password": "sales-pass-1",
    "mobile": "13912345678",
    "email": "Zhang.San@Example.COM",
    "roles": ["sales"],
}


async def state() -> tuple[Any, ...]:
    """Everything an admin write could change, to assert a refusal changed nothing."""
    users = await User.all().order_by("id").values()
    links = sorted(await Role.filter(users__id__isnull=False).values_list("users__id", "code"))
    written = await AuditLog.exclude(action__startswith="auth.").count()
    return users, links, written


def without_times(body: dict[str, Any]) -> dict[str, Any]:
    for name in ("created_at", "updated_at"):
        assert dt.datetime.fromisoformat(body.pop(name)).tzinfo is not None
    return body


async def audit_rows(action: str) -> list[dict[str, Any]]:
    return await AuditLog.filter(action=action).order_by("id").values()


# --- list --------------------------------------------------------------------------------


async def test_list_pages_and_filters(client: Client, root: str) -> None:
    sales = await Department.create(name="销售部")
    east = await Department.create(name="华东组", parent=sales)
    await make_staff("wang", ["sales_manager"], sales.id, name="王芳", mobile="13800000001")
    await make_staff("li", ["sales"], east.id, name="李强", mobile="13800000002")
    await make_staff("chen", ["sales"], east.id, name="陈静", status=UserStatus.DISABLED)
    await make_staff("lina", ["ops"], name="李娜")

    status, body = await call(client, "GET", "/api/admin/users", root, params={"size": 2})
    assert status == 200
    assert [u["username"] for u in body["items"]] == ["root", "wang"]
    assert (body["total"], body["page"], body["size"]) == (5, 1, 2)
    _, second = await call(client, "GET", "/api/admin/users", root, params={"page": 3, "size": 2})
    assert [u["username"] for u in second["items"]] == ["lina"]

    async def usernames(**params: Any) -> list[str]:
        status, body = await call(client, "GET", "/api/admin/users", root, params=params)
        assert status == 200, body
        assert body["total"] == len(body["items"])
        return [user["username"] for user in body["items"]]

    assert await usernames(q="李") == ["li", "lina"]
    assert await usernames(q="LI") == ["li", "lina"]
    assert await usernames(q="0000002") == ["li"]
    assert await usernames(department_id=sales.id) == ["wang"]
    assert await usernames(department_id=sales.id, include_subdepartments="true") == [
        "wang",
        "li",
        "chen",
    ]
    assert await usernames(role="sales") == ["li", "chen"]
    assert await usernames(status="disabled") == ["chen"]
    assert await usernames(role="sales", status="active", q="li") == ["li"]
    assert await usernames(q="100%") == []


async def test_list_refuses_bad_query(client: Client, root: str) -> None:
    status, body = await call(
        client,
        "GET",
        "/api/admin/users",
        root,
        params={"page": "0", "size": "101", "status": "gone", "role": "Bad Role", "sort": "x"},
    )
    assert status == 422
    assert error_code(body) == "validation_error"
    assert field_paths(body) == {"page", "size", "status", "role", "sort"}


async def test_a_user_never_shows_a_password_hash(client: Client, root: str) -> None:
    status, body = await call(client, "GET", "/api/admin/users", root)
    assert status == 200
    assert set(body["items"][0]) == {
        "id",
        "username",
        "name",
        "mobile",
        "email",
        "status",
        "roles",
        "department",
        "position",
        "last_login_at",
        "last_login_ip",
        "created_at",
        "updated_at",
    }
    assert body["items"][0]["last_login_ip"] == "127.0.0.1"


# --- data scope --------------------------------------------------------------------------


async def test_a_manager_sees_only_their_department_subtree(client: Client, root: str) -> None:
    head = await Department.create(name="总经办")
    sales = await Department.create(name="销售部", parent=head)
    east = await Department.create(name="华东组", parent=sales)
    ops = await Department.create(name="运营部", parent=head)
    boss = await make_staff("boss", ["sales_manager"], head.id)
    await make_staff("wang", ["sales_manager"], sales.id)
    li = await make_staff("li", ["sales"], east.id)
    await make_staff("zhao", ["sales"], sales.id)
    lina = await make_staff("lina", ["ops"], ops.id)
    await make_staff("nobody", ["sales"])

    async def visible(token: str) -> list[str]:
        status, body = await call(client, "GET", "/api/admin/users", token, params={"size": 100})
        assert status == 200, body
        assert body["total"] == len(body["items"])
        return sorted(user["username"] for user in body["items"])

    wang = await sign_in(client, "wang")
    assert await visible(wang) == ["li", "wang", "zhao"]
    assert await visible(await sign_in(client, "boss")) == ["boss", "li", "lina", "wang", "zhao"]
    east_manager = await staff_token(client, "xu", ["sales_manager"], east.id)
    assert await visible(east_manager) == ["li", "xu"]
    everyone = ["boss", "li", "lina", "nobody", "root", "wang", "xu", "zhao"]
    assert await visible(root) == everyone

    assert (await call(client, "GET", f"/api/admin/users/{li.id}", wang))[0] == 200
    for outside in (boss, lina):
        status, body = await call(client, "GET", f"/api/admin/users/{outside.id}", wang)
        assert status == 404
        assert error_code(body) == "not_found"
    _, filtered = await call(
        client, "GET", "/api/admin/users", wang, params={"department_id": ops.id}
    )
    assert filtered["items"] == []


# --- create ------------------------------------------------------------------------------


async def test_create_a_user(client: Client, root: str) -> None:
    sales = await Department.create(name="销售部")
    seller = await Position.create(name="销售专员", department=sales)
    response = await client.post(
        "/api/admin/users",
        json={**NEW_USER, "department_id": sales.id, "position_id": seller.id},
        headers={"Authorization": f"Bearer {root}", "X-Request-ID": "create-1"},
    )
    assert response.status == 201
    body = await response.json()
    created = await User.get(username="zhang.san")
    assert without_times(body) == {
        "id": created.id,
        "username": "zhang.san",
        "name": "张三",
        "mobile": "13912345678",
        "email": "Zhang.San@example.com",
        "status": "active",
        "roles": ["sales"],
        "department": {"id": sales.id, "name": "销售部"},
        "position": {"id": seller.id, "name": "销售专员"},
        "last_login_at": None,
        "last_login_ip": None,
    }
    assert verify_password(created.password_hash, "sales-pass-1")
    root_user = await User.get(username="root")
    [entry] = await audit_rows("user.create")
    assert {k: entry[k] for k in ("actor_kind", "actor_id", "actor_name", "result")} == {
        "actor_kind": "staff",
        "actor_id": root_user.id,
        "actor_name": "Root",
        "result": "ok",
    }
    assert (entry["target_type"], entry["target_id"]) == ("user", str(created.id))
    assert (entry["ip"], entry["request_id"]) == ("127.0.0.1", "create-1")
    assert entry["details"] == {"username": "zhang.san", "roles": ["sales"]}

    token = await sign_in(client, "zhang.san", "sales-pass-1")
    status, me = await call(client, "GET", "/api/auth/me", token)
    assert (status, me["roles"], me["department_id"]) == (200, ["sales"], sales.id)


async def test_create_refuses_invalid_fields(client: Client, root: str) -> None:
    before = await state()
    bad = {
        "username": "张三",
        "name": "  ",
        "mobile": "12345678901",
        "email": "not-an-email",
        "department_id": 0,
        "roles": ["Sales"],
        "extra": 1,
    }
    status, body = await call(client, "POST", "/api/admin/users", root, json=bad)
    assert status == 422
    assert field_paths(body) == {
        "username",
        "name",
        "mobile",
        "email",
        "password",
        "department_id",
        "roles.0",
        "extra",
    }
    for mobile in ("1391234567", "139123456789", "13912345６78"):
        status, body = await call(
            client, "POST", "/api/admin/users", root, json={**NEW_USER, "mobile": mobile}
        )
        assert (status, field_paths(body)) == (422, {"mobile"}), mobile
    assert await state() == before


async def test_create_refuses_weak_passwords_and_unknown_references(
    client: Client, root: str
) -> None:
    before = await state()
    status, body = await call(
        client, "POST", "/api/admin/users", root, json={**NEW_USER, "password": "12345678901"}
    )
    assert (status, error_code(body), field_paths(body)) == (422, "weak_password", {"password"})

    status, body = await call(
        client, "POST", "/api/admin/users", root, json={**NEW_USER, "roles": ["sales", "boss"]}
    )
    assert (status, error_code(body), field_paths(body)) == (422, "unknown_role", {"roles.1"})

    status, body = await call(
        client, "POST", "/api/admin/users", root, json={**NEW_USER, "roles": ["member"]}
    )
    assert (status, error_code(body), field_paths(body)) == (422, "validation_error", {"roles.0"})

    for field in ("department_id", "position_id"):
        status, body = await call(
            client, "POST", "/api/admin/users", root, json={**NEW_USER, field: 987654}
        )
        assert (status, error_code(body), field_paths(body)) == (422, "validation_error", {field})
    assert await state() == before


async def test_create_refuses_taken_username_and_mobile(client: Client, root: str) -> None:
    await make_staff("zhang.san", ["sales"])
    await make_staff("other", mobile="13912345678")
    before = await state()
    status, body = await call(client, "POST", "/api/admin/users", root, json=NEW_USER)
    assert (status, error_code(body)) == (409, "username_taken")
    status, body = await call(
        client, "POST", "/api/admin/users", root, json={**NEW_USER, "username": "zhang.san2"}
    )
    assert (status, error_code(body)) == (409, "mobile_taken")
    assert await state() == before


# --- read and update ---------------------------------------------------------------------


async def test_get_a_user_and_not_found(client: Client, root: str) -> None:
    li = await make_staff("li", ["sales", "ops"], mobile="13800000002")
    status, body = await call(client, "GET", f"/api/admin/users/{li.id}", root)
    assert status == 200
    assert (body["username"], body["roles"], body["mobile"]) == ("li", ["ops", "sales"], li.mobile)
    for missing in (li.id + 100, 2**63, 10**30):
        status, body = await call(client, "GET", f"/api/admin/users/{missing}", root)
        assert (status, error_code(body)) == (404, "not_found")
    status, _ = await call(client, "GET", "/api/admin/users/abc", root)
    assert status == 404


async def test_update_a_user(client: Client, root: str) -> None:
    seller = await Position.create(name="销售专员")
    li = await make_staff("li", ["sales"], mobile="13800000002")
    status, body = await call(
        client,
        "PATCH",
        f"/api/admin/users/{li.id}",
        root,
        json={"name": "李强", "mobile": None, "email": "li@example.com", "position_id": seller.id},
    )
    assert status == 200
    assert (body["name"], body["mobile"], body["email"]) == ("李强", None, "li@example.com")
    assert body["position"] == {"id": seller.id, "name": "销售专员"}
    stored = await User.get(id=li.id)
    assert (stored.name, stored.mobile, stored.position_id) == ("李强", None, seller.id)
    [entry] = await audit_rows("user.update")
    assert entry["details"] == {
        "changes": {
            "name": ["Li", "李强"],
            "mobile": ["13800000002", None],
            "email": [None, "li@example.com"],
            "position_id": [None, seller.id],
        }
    }

    status, body = await call(client, "PATCH", f"/api/admin/users/{li.id}", root, json={})
    assert (status, body["name"]) == (200, "李强")
    assert len(await audit_rows("user.update")) == 1  # nothing changed, nothing recorded


async def test_update_refusals_change_nothing(client: Client, root: str) -> None:
    li = await make_staff("li", ["sales"])
    await make_staff("zhao", mobile="13800000009")
    before = await state()
    status, body = await call(
        client,
        "PATCH",
        f"/api/admin/users/{li.id}",
        root,
        json={"name": None, "email": "x@", "username": "new"},
    )
    assert (status, field_paths(body)) == (422, {"name", "email", "username"})
    status, body = await call(
        client, "PATCH", f"/api/admin/users/{li.id}", root, json={"mobile": "13800000009"}
    )
    assert (status, error_code(body)) == (409, "mobile_taken")
    status, body = await call(
        client, "PATCH", f"/api/admin/users/{li.id}", root, json={"department_id": 424242}
    )
    assert (status, field_paths(body)) == (422, {"department_id"})
    status, body = await call(
        client, "PATCH", f"/api/admin/users/{li.id + 99}", root, json={"name": "x"}
    )
    assert (status, error_code(body)) == (404, "not_found")
    assert await state() == before


async def test_moving_a_user_to_another_department_ends_their_sessions(
    client: Client, root: str
) -> None:
    sales = await Department.create(name="销售部")
    ops = await Department.create(name="运营部")
    wang = await make_staff("wang", ["sales_manager"], sales.id)
    token = await sign_in(client, "wang")
    status, _ = await call(
        client, "PATCH", f"/api/admin/users/{wang.id}", root, json={"department_id": ops.id}
    )
    assert status == 200
    status, body = await call(client, "GET", "/api/auth/me", token)
    assert (status, error_code(body)) == (401, "token_revoked")
    _, me = await call(client, "GET", "/api/auth/me", await sign_in(client, "wang"))
    assert me["department_id"] == ops.id


# --- roles -------------------------------------------------------------------------------


async def test_replacing_roles_ends_sessions_and_applies_the_new_ones(
    client: Client, root: str
) -> None:
    li = await make_staff("li", ["sales"])
    token = await sign_in(client, "li")
    assert (await call(client, "GET", "/api/admin/users", token))[0] == 403

    status, body = await call(
        client, "PUT", f"/api/admin/users/{li.id}/roles", root, json={"roles": ["ops", "admin"]}
    )
    assert (status, body["roles"]) == (200, ["admin", "ops"])
    status, body = await call(client, "GET", "/api/auth/me", token)
    assert (status, error_code(body)) == (401, "token_revoked")
    fresh = await sign_in(client, "li")
    _, me = await call(client, "GET", "/api/auth/me", fresh)
    assert me["roles"] == ["admin", "ops"]
    assert (await call(client, "GET", "/api/admin/users", fresh))[0] == 200
    [entry] = await audit_rows("role.assign")
    assert entry["details"] == {"before": ["sales"], "after": ["admin", "ops"]}
    assert (entry["target_type"], entry["target_id"]) == ("user", str(li.id))

    status, body = await call(
        client, "PUT", f"/api/admin/users/{li.id}/roles", root, json={"roles": ["ops", "admin"]}
    )
    assert status == 200
    assert (await call(client, "GET", "/api/auth/me", fresh))[0] == 200  # same set: kept
    assert len(await audit_rows("role.assign")) == 1


async def test_role_replacement_refusals_change_nothing(client: Client, root: str) -> None:
    li = await make_staff("li", ["sales"])
    token = await sign_in(client, "li")
    root_user = await User.get(username="root")
    before = await state()
    cases = [
        (li.id, {"roles": ["sales", "ghost"]}, 422, "unknown_role"),
        (li.id, {"roles": ["member"]}, 422, "validation_error"),
        (li.id, {"roles": "sales"}, 422, "validation_error"),
        (li.id, {}, 422, "validation_error"),
        (li.id + 99, {"roles": ["ops"]}, 404, "not_found"),
        (root_user.id, {"roles": ["ops"]}, 409, "cannot_demote_self"),
    ]
    for user_id, payload, expected, code in cases:
        status, body = await call(
            client, "PUT", f"/api/admin/users/{user_id}/roles", root, json=payload
        )
        assert (status, error_code(body)) == (expected, code), payload
    assert await state() == before
    assert (await call(client, "GET", "/api/auth/me", token))[0] == 200


# --- disable and enable ------------------------------------------------------------------


async def test_disabling_ends_every_session_at_once_and_blocks_sign_in(
    client: Client, root: str
) -> None:
    li = await make_staff("li", ["sales"])
    first = await sign_in(client, "li")
    status, signed = await login(client, "li")
    assert status == 200
    second, refresh = signed["access_token"], signed["refresh_token"]

    status, body = await call(client, "POST", f"/api/admin/users/{li.id}/disable", root)
    assert (status, body["status"]) == (200, "disabled")
    for token in (first, second):
        status, body = await call(client, "GET", "/api/auth/me", token)
        assert (status, error_code(body)) == (401, "token_revoked")
    status, body = await login(client, "li")
    assert (status, error_code(body)) == (403, "account_disabled")
    response = await client.post("/api/auth/refresh", json={"refresh_token": refresh})
    assert response.status in (401, 403)
    assert (await User.get(id=li.id)).status == UserStatus.DISABLED
    assert len(await audit_rows("user.disable")) == 1

    status, body = await call(client, "POST", f"/api/admin/users/{li.id}/disable", root)
    assert (status, body["status"]) == (200, "disabled")
    assert len(await audit_rows("user.disable")) == 1  # already disabled: nothing to record

    status, body = await call(client, "POST", f"/api/admin/users/{li.id}/enable", root)
    assert (status, body["status"]) == (200, "active")
    assert (await call(client, "GET", "/api/auth/me", await sign_in(client, "li")))[0] == 200
    assert [row["target_id"] for row in await audit_rows("user.enable")] == [str(li.id)]


async def test_an_admin_cannot_disable_themselves(client: Client, root: str) -> None:
    await make_staff("second_admin", ["admin"])
    root_user = await User.get(username="root")
    before = await state()
    status, body = await call(client, "POST", f"/api/admin/users/{root_user.id}/disable", root)
    assert (status, error_code(body)) == (409, "cannot_disable_self")
    for action in ("disable", "enable"):
        status, body = await call(client, "POST", f"/api/admin/users/987654/{action}", root)
        assert (status, error_code(body)) == (404, "not_found"), action
    assert await state() == before
    assert (await call(client, "GET", "/api/auth/me", root))[0] == 200


async def test_the_last_active_admin_stays(client: Client, root: str) -> None:
    """A manager given user-management rights (policy) over a department holding the only
    admin may not disable that admin, nor grant or take the admin role."""
    team = await Department.create(name="人事部")
    root_user = await User.get(username="root")
    await User.filter(id=root_user.id).update(department_id=team.id)
    await Role.create(code="hr", name="人事")
    for path, methods in (
        ("/api/admin/users/:id/disable", "POST"),
        ("/api/admin/users/:id/roles", "PUT"),
    ):
        status, body = await call(
            client,
            "POST",
            "/api/admin/policies",
            root,
            json={"ptype": "p", "v0": "hr", "v1": path, "v2": methods},
        )
        assert status == 201, body
    hr = await staff_token(client, "hr_lead", ["sales_manager", "hr"], team.id)
    li = await make_staff("li", ["sales"], team.id)
    before = await state()

    status, body = await call(client, "POST", f"/api/admin/users/{root_user.id}/disable", hr)
    assert (status, error_code(body)) == (409, "last_admin")
    status, body = await call(
        client, "PUT", f"/api/admin/users/{root_user.id}/roles", hr, json={"roles": ["ops"]}
    )
    assert (status, error_code(body)) == (403, "admin_role_reserved")
    status, body = await call(
        client, "PUT", f"/api/admin/users/{li.id}/roles", hr, json={"roles": ["admin"]}
    )
    assert (status, error_code(body)) == (403, "admin_role_reserved")
    assert await state() == before

    await make_staff("deputy", ["admin"], team.id)
    status, body = await call(client, "POST", f"/api/admin/users/{root_user.id}/disable", hr)
    assert (status, body["status"]) == (200, "disabled")


async def test_a_manager_given_user_rights_stays_in_their_scope(client: Client, root: str) -> None:
    """Granted user writes by a policy, a manager acts on and places users in their
    department subtree only; the rest of the company stays out of reach."""
    sales = await Department.create(name="销售部")
    east = await Department.create(name="华东组", parent=sales)
    ops = await Department.create(name="运营部")
    await Role.create(code="hr", name="人事")
    for path, method in (("/api/admin/users", "POST"), ("/api/admin/users/:id", "PATCH")):
        rule = {"ptype": "p", "v0": "hr", "v1": path, "v2": method}
        assert (await call(client, "POST", "/api/admin/policies", root, json=rule))[0] == 201
    hr = await staff_token(client, "hr_lead", ["sales_manager", "hr"], sales.id)
    li = await make_staff("li", ["sales"], sales.id)
    lina = await make_staff("lina", ["ops"], ops.id)
    before = await state()
    refusals = [
        ("PATCH", f"/api/admin/users/{li.id}", {"department_id": ops.id}, 403),
        ("PATCH", f"/api/admin/users/{li.id}", {"department_id": None}, 403),
        ("PATCH", f"/api/admin/users/{lina.id}", {"name": "改名"}, 404),
        ("POST", "/api/admin/users", {**NEW_USER, "department_id": ops.id}, 403),
        ("POST", "/api/admin/users", NEW_USER, 403),
    ]
    for method, path, payload, expected in refusals:
        status, body = await call(client, method, path, hr, json=payload)
        assert status == expected, (path, payload, body)
    assert await state() == before

    status, body = await call(
        client, "PATCH", f"/api/admin/users/{li.id}", hr, json={"department_id": east.id}
    )
    assert (status, body["department"]) == (200, {"id": east.id, "name": "华东组"})
    status, body = await call(
        client, "POST", "/api/admin/users", hr, json={**NEW_USER, "department_id": east.id}
    )
    assert (status, body["department"]["id"]) == (201, east.id)


async def test_two_admins_disabling_each_other_at_once_leave_one(client: Client, root: str) -> None:
    root_user = await User.get(username="root")
    other = await make_staff("deputy", ["admin"])
    deputy = await sign_in(client, "deputy")
    answers = await asyncio.gather(
        call(client, "POST", f"/api/admin/users/{other.id}/disable", root),
        call(client, "POST", f"/api/admin/users/{root_user.id}/disable", deputy),
    )
    outcomes = sorted((status, body.get("error", {}).get("code")) for status, body in answers)
    # The second one waits for the first: its caller is then disabled (401) or, if it was
    # already past authentication, the last admin (409).
    assert outcomes in ([(200, None), (401, "token_revoked")], [(200, None), (409, "last_admin")])
    assert await User.filter(status=UserStatus.ACTIVE, roles__code="admin").count() == 1


# --- password reset ----------------------------------------------------------------------


async def test_resetting_a_password_ends_sessions(client: Client, root: str) -> None:
    li = await make_staff("li", ["sales"])
    token = await sign_in(client, "li")
    status, body = await call(
        client, "POST", f"/api/admin/users/{li.id}/password", root, json={"password": "new-pass-42"}
    )
    assert (status, body) == (204, None)
    status, body = await call(client, "GET", "/api/auth/me", token)
    assert (status, error_code(body)) == (401, "token_revoked")
    status, body = await login(client, "li", PASSWORD)
    assert (status, error_code(body)) == (401, "bad_credentials")
    assert await sign_in(client, "li", "new-pass-42")
    [entry] = await audit_rows("user.password_reset")
    assert entry["target_id"] == str(li.id)
    assert "new-pass-42" not in str(entry)


async def test_password_reset_refusals_change_nothing(client: Client, root: str) -> None:
    li = await make_staff("li", ["sales"])
    before = await state()
    for payload, paths, code in (
        ({"password": "short"}, {"password"}, "weak_password"),
        ({"password": "1234567890"}, {"password"}, "weak_password"),
        ({"password": ""}, {"password"}, "validation_error"),
        ({}, {"password"}, "validation_error"),
    ):
        status, body = await call(
            client, "POST", f"/api/admin/users/{li.id}/password", root, json=payload
        )
        assert (status, error_code(body), field_paths(body)) == (422, code, paths), payload
    status, body = await call(
        client, "POST", "/api/admin/users/987654/password", root, json={"password": "new-pass-42"}
    )
    assert (status, error_code(body)) == (404, "not_found")
    assert await state() == before


# --- who may -----------------------------------------------------------------------------


Request = tuple[str, str, object]
WRITES: list[Request] = [
    ("POST", "/api/admin/users", NEW_USER),
    ("PATCH", "/api/admin/users/{id}", {"name": "改名"}),
    ("PUT", "/api/admin/users/{id}/roles", {"roles": ["admin"]}),
    ("POST", "/api/admin/users/{id}/disable", None),
    ("POST", "/api/admin/users/{id}/enable", None),
    ("POST", "/api/admin/users/{id}/password", {"password": "new-pass-42"}),
]
READS: list[Request] = [("GET", "/api/admin/users", None), ("GET", "/api/admin/users/{id}", None)]


@pytest.mark.parametrize("caller", ["sales", "ops", "member", "anonymous", "sales_manager"])
async def test_callers_without_the_right_are_refused(client: Client, caller: str) -> None:
    target = await make_staff("li", ["sales"])
    token = await caller_token(client, caller)
    before = await state()
    refused = WRITES if caller == "sales_manager" else WRITES + READS
    for method, path, payload in refused:
        status, body = await call(client, method, path.format(id=target.id), token, json=payload)
        expected = (401, "unauthorized") if token is None else (403, "forbidden")
        assert (status, error_code(body)) == expected, (method, path)
    assert await state() == before
