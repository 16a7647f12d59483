"""Admin API of members (shoppers) and of the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from deer.accounts.models import AuditLog, Member, MemberCondition
from tests.auth_helpers import (
    call,
    caller_token,
    error_code,
    field_paths,
    login,
    make_member,
    make_staff,
    root_fixture,  # noqa: F401 - the `root` fixture
    sign_in,
)

Client = TestClient[Any, Any]


async def state() -> tuple[Any, ...]:
    return (
        await Member.all().order_by("id").values(),
        await AuditLog.exclude(action__startswith="auth.").count(),
    )


# --- members -----------------------------------------------------------------------------


async def member_ids(client: Client, token: str, **params: Any) -> list[int]:
    """The ids `GET /api/admin/members` lists with these query parameters."""
    status, body = await call(client, "GET", "/api/admin/members", token, params=params)
    assert status == 200, body
    return [member["id"] for member in body["items"]]


async def test_members_newest_first_with_filters(client: Client, root: str) -> None:
    first = await make_member("13700000001", name="赵敏")
    second = await make_member("13700000002", name="周芷若", condition=MemberCondition.FORMAL)
    third = await make_member("13600000003", name="赵灵儿", condition=MemberCondition.FROZEN)
    await Member.filter(id=second.id).update(
        level=2,
        points=1280,
        total_spent=128_000,
        paid_orders=3,
        tags=["VIP", "回头客"],
        wechat_openid="o-abc",
    )

    status, body = await call(client, "GET", "/api/admin/members", root, params={"size": 2})
    assert status == 200
    assert [m["id"] for m in body["items"]] == [third.id, second.id]
    assert (body["total"], body["page"], body["size"]) == (3, 1, 2)
    shown = body["items"][1]
    for name in ("created_at", "updated_at"):
        assert dt.datetime.fromisoformat(shown.pop(name)).tzinfo is not None
    assert shown == {
        "id": second.id,
        "mobile": "13700000002",
        "name": "周芷若",
        "avatar": None,
        "condition": "formal",
        "level": 2,
        "points": 1280,
        "total_spent": 128_000,
        "paid_orders": 3,
        "tags": ["VIP", "回头客"],
        "wechat_bound": True,
        "last_login_at": None,
        "last_login_ip": None,
    }

    async def ids(**params: Any) -> list[int]:
        return await member_ids(client, root, **params)

    assert await ids(q="赵") == [third.id, first.id]
    assert await ids(q="137000") == [second.id, first.id]
    assert await ids(condition="frozen") == [third.id]
    assert await ids(condition="expired") == []
    status, body = await call(
        client, "GET", "/api/admin/members", root, params={"condition": "vip", "size": 0}
    )
    assert (status, field_paths(body)) == (422, {"condition", "size"})

    status, one = await call(client, "GET", f"/api/admin/members/{first.id}", root)
    assert (status, one["name"], one["wechat_bound"]) == (200, "赵敏", False)
    status, body = await call(client, "GET", "/api/admin/members/987654", root)
    assert (status, error_code(body)) == (404, "not_found")


async def test_members_by_tag_level_and_spend(client: Client, root: str) -> None:
    low = await make_member("13700000001")
    mid = await make_member("13700000002")
    high = await make_member("13700000003")
    await Member.filter(id=low.id).update(total_spent=50_000, tags=["新客"])
    await Member.filter(id=mid.id).update(level=1, total_spent=100_000, tags=["VIP", "新客"])
    await Member.filter(id=high.id).update(level=2, total_spent=800_000, tags=["VIP"])

    async def ids(**params: Any) -> list[int]:
        return await member_ids(client, root, **params)

    assert await ids(tag="VIP") == [high.id, mid.id]
    assert await ids(tag=" 新客 ") == [mid.id, low.id]
    assert await ids(tag="VI") == []
    assert await ids(level=1) == [mid.id]
    assert await ids(min_spent=100_000) == [high.id, mid.id]
    assert await ids(max_spent=100_000) == [mid.id, low.id]
    assert await ids(min_spent=100_000, max_spent=100_000, tag="VIP") == [mid.id]
    status, body = await call(
        client,
        "GET",
        "/api/admin/members",
        root,
        params={"tag": "x" * 21, "level": -1, "min_spent": 10, "max_spent": 9},
    )
    assert (status, field_paths(body)) == (422, {"tag", "level", "max_spent"})
    status, body = await call(
        client, "GET", "/api/admin/members", root, params={"min_spent": "1.5", "tag": ""}
    )
    assert (status, field_paths(body)) == (422, {"min_spent", "tag"})


async def test_updating_a_member(client: Client, root: str) -> None:
    member = await make_member("13700000001", name="赵敏")
    status, body = await call(
        client,
        "PATCH",
        f"/api/admin/members/{member.id}",
        root,
        json={"name": "赵敏敏", "avatar": "https://img.example.com/a.png", "condition": "formal"},
    )
    assert status == 200
    assert (body["name"], body["avatar"], body["condition"]) == (
        "赵敏敏",
        "https://img.example.com/a.png",
        "formal",
    )
    stored = await Member.get(id=member.id)
    assert (stored.name, stored.avatar, stored.condition) == (
        "赵敏敏",
        "https://img.example.com/a.png",
        MemberCondition.FORMAL,
    )
    status, body = await call(
        client, "PATCH", f"/api/admin/members/{member.id}", root, json={"avatar": None}
    )
    assert (status, body["avatar"]) == (200, None)
    entries = await AuditLog.filter(action="member.update").order_by("id")
    assert [(e.target_type, e.target_id, e.details) for e in entries] == [
        (
            "member",
            str(member.id),
            {
                "changes": {
                    "name": ["赵敏", "赵敏敏"],
                    "avatar": [None, "https://img.example.com/a.png"],
                    "condition": ["potential", "formal"],
                }
            },
        ),
        (
            "member",
            str(member.id),
            {"changes": {"avatar": ["https://img.example.com/a.png", None]}},
        ),
    ]


async def test_freezing_a_member_signs_them_out(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    token = await sign_in(client, "13700000001", kind="member")
    assert (await call(client, "GET", "/api/auth/me", token))[0] == 200
    status, body = await call(
        client, "PATCH", f"/api/admin/members/{member.id}", root, json={"condition": "frozen"}
    )
    assert (status, body["condition"]) == (200, "frozen")
    status, body = await call(client, "GET", "/api/auth/me", token)
    assert (status, error_code(body)) == (401, "token_revoked")
    status, body = await login(client, "13700000001", kind="member")
    assert (status, error_code(body)) == (403, "account_disabled")

    status, _ = await call(
        client, "PATCH", f"/api/admin/members/{member.id}", root, json={"condition": "formal"}
    )
    assert status == 200
    assert await sign_in(client, "13700000001", kind="member")


async def test_member_refusals_change_nothing(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    before = await state()
    status, body = await call(
        client,
        "PATCH",
        f"/api/admin/members/{member.id}",
        root,
        json={
            "name": None,
            "avatar": "javascript:alert(1)",
            "condition": "vip",
            "points": 100,
        },
    )
    assert (status, field_paths(body)) == (422, {"name", "avatar", "condition", "points"})
    status, body = await call(
        client, "PATCH", "/api/admin/members/987654", root, json={"name": "x"}
    )
    assert (status, error_code(body)) == (404, "not_found")
    assert await state() == before


@pytest.mark.parametrize("caller", ["sales", "ops", "sales_manager", "member", "anonymous"])
async def test_who_may_read_and_change_members(client: Client, caller: str) -> None:
    member = await make_member("13700000009")
    token = await caller_token(client, caller)
    before = await state()
    staff = caller not in ("member", "anonymous")
    for path in ("/api/admin/members", f"/api/admin/members/{member.id}"):
        status, _ = await call(client, "GET", path, token)
        assert status == (200 if staff else 401 if token is None else 403), path
    status, body = await call(
        client,
        "PATCH",
        f"/api/admin/members/{member.id}",
        token,
        json={"condition": "frozen"},
    )
    expected = (401, "unauthorized") if token is None else (403, "forbidden")
    assert (status, error_code(body)) == expected
    assert await state() == before


# --- audit log ---------------------------------------------------------------------------


async def test_the_audit_log_newest_first_with_filters(client: Client, root: str) -> None:
    boss_user = await make_staff("boss", ["admin"])
    boss = await sign_in(client, "boss")
    li = await make_staff("li", ["sales"])
    member = await make_member("13700000001")
    await call(client, "POST", f"/api/admin/users/{li.id}/disable", root)
    await call(client, "POST", f"/api/admin/users/{li.id}/enable", boss)
    await call(client, "PATCH", f"/api/admin/members/{member.id}", boss, json={"name": "x"})
    await login(client, "li", "wrong-password-1")
    status, body = await call(client, "GET", "/api/admin/audit", root, params={"size": 100})
    assert status == 200
    assert body["total"] == len(body["items"]) == 6
    assert [(e["action"], e["result"]) for e in body["items"]] == [
        ("auth.login", "failed"),
        ("member.update", "ok"),
        ("user.enable", "ok"),
        ("user.disable", "ok"),
        ("auth.login", "ok"),
        ("auth.login", "ok"),
    ]
    enable = body["items"][2]
    assert {k: v for k, v in enable.items() if k not in ("id", "created_at", "request_id")} == {
        "actor_kind": "staff",
        "actor_id": boss_user.id,
        "actor_name": "Boss",
        "action": "user.enable",
        "target_type": "user",
        "target_id": str(li.id),
        "result": "ok",
        "ip": "127.0.0.1",
        "user_agent": enable["user_agent"],
        "details": {},
    }
    assert enable["user_agent"].startswith("Python")
    assert enable["request_id"]

    async def actions(**params: Any) -> list[str]:
        status, body = await call(client, "GET", "/api/admin/audit", root, params=params)
        assert status == 200, body
        return [entry["action"] for entry in body["items"]]

    assert await actions(actor_id=boss_user.id) == ["member.update", "user.enable", "auth.login"]
    assert await actions(actor_kind="anonymous") == ["auth.login"]
    assert await actions(action="user.disable") == ["user.disable"]
    assert await actions(result="failed") == ["auth.login"]
    assert await actions(target_type="user", target_id=str(li.id)) == [
        "user.enable",
        "user.disable",
    ]
    assert await actions(size=2, page=2) == ["user.enable", "user.disable"]

    rows = await AuditLog.all().order_by("id")
    await AuditLog.filter(id=rows[0].id).update(
        created_at=dt.datetime(2025, 1, 1, 8, 0, tzinfo=dt.UTC)
    )
    await AuditLog.filter(id=rows[1].id).update(
        created_at=dt.datetime(2025, 1, 2, 8, 0, tzinfo=dt.UTC)
    )
    assert await actions(until="2025-01-02T08:00:00Z") == ["auth.login"]
    assert await actions(since="2025-01-01T09:00:00+08:00", until="2025-01-03T00:00:00Z") == [
        "auth.login",
        "auth.login",
    ]
    assert len(await actions(since="2025-01-02T08:00:00.000001Z")) == 4


async def test_audit_filters_are_checked(client: Client, root: str) -> None:
    status, body = await call(
        client,
        "GET",
        "/api/admin/audit",
        root,
        params={"since": "2025-01-01T00:00:00", "actor_kind": "robot", "actor_id": "x"},
    )
    assert (status, field_paths(body)) == (422, {"since", "actor_kind", "actor_id"})
    status, body = await call(
        client,
        "GET",
        "/api/admin/audit",
        root,
        params={"since": "2025-01-02T00:00:00Z", "until": "2025-01-01T00:00:00Z"},
    )
    assert (status, field_paths(body)) == (422, {"until"})


@pytest.mark.parametrize("caller", ["sales_manager", "sales", "ops", "member", "anonymous"])
async def test_only_admins_read_the_audit_log(client: Client, caller: str) -> None:
    token = await caller_token(client, caller)
    status, body = await call(client, "GET", "/api/admin/audit", token)
    expected = (401, "unauthorized") if token is None else (403, "forbidden")
    assert (status, error_code(body)) == expected
