"""Members over HTTP: a member's own membership and ledger; staff tags, notes, points
adjustments and the member list's filters."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from deer.accounts import points
from deer.accounts.models import AuditLog, Member, MemberCondition, MemberNote, PointsEntry
from tests.auth_helpers import (
    call,
    caller_token,
    error_code,
    field_paths,
    make_member,
    make_staff,
    member_token,
    root_fixture,  # noqa: F401 - the `root` fixture
    sign_in,
    staff_token,
)

Client = TestClient[Any, Any]


async def state() -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    return (
        await Member.all().order_by("id").values(),
        await MemberNote.all().order_by("id").values(),
        await PointsEntry.all().order_by("id").values(),
        await AuditLog.exclude(action__startswith="auth.").count(),
    )


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


# --- a member's own ------------------------------------------------------------------------


async def test_my_membership_and_the_next_level(client: Client, settings: Settings) -> None:
    token = await member_token(client, "13700000001")
    member = await Member.get(mobile="13700000001")
    status, body = await call(client, "GET", "/api/members/me", token)
    assert status == 200
    assert dt.datetime.fromisoformat(body.pop("created_at")).tzinfo is not None
    assert body == {
        "id": member.id,
        "mobile": "13700000001",
        "name": "顾客",
        "avatar": None,
        "condition": "potential",
        "level": 0,
        "points": 0,
        "total_spent": 0,
        "paid_orders": 0,
        "next_level": {"level": 1, "spend": 100_000, "missing": 100_000},
        "wechat_bound": False,
    }
    await points.record_paid_order(settings, member.id, 1, 620_000)
    status, body = await call(client, "GET", "/api/members/me", token)
    assert status == 200
    assert (body["condition"], body["level"], body["points"]) == ("formal", 2, 6_200)
    assert (body["total_spent"], body["paid_orders"]) == (620_000, 1)
    assert body["next_level"] == {"level": 3, "spend": 2_000_000, "missing": 1_380_000}
    await points.record_paid_order(settings, member.id, 2, 9_380_000)
    status, body = await call(client, "GET", "/api/members/me", token)
    assert (body["level"], body["next_level"]) == (4, None)


async def test_changing_my_profile(client: Client) -> None:
    token = await member_token(client, "13700000001")
    member = await Member.get(mobile="13700000001")
    status, body = await call(
        client,
        "PATCH",
        "/api/members/me",
        token,
        json={"name": " 小龙女 ", "avatar": "https://img.example.com/me.png"},
    )
    assert status == 200
    assert (body["name"], body["avatar"]) == ("小龙女", "https://img.example.com/me.png")
    status, body = await call(client, "PATCH", "/api/members/me", token, json={"avatar": None})
    assert (status, body["name"], body["avatar"]) == (200, "小龙女", None)
    entries = await AuditLog.filter(action="member.update").order_by("id")
    assert [(e.actor_kind, e.actor_id, e.target_id) for e in entries] == [
        ("member", member.id, str(member.id)),
        ("member", member.id, str(member.id)),
    ]

    before = await state()
    status, body = await call(
        client,
        "PATCH",
        "/api/members/me",
        token,
        json={"name": None, "avatar": "ftp://x", "condition": "formal", "points": 9},
    )
    assert (status, field_paths(body)) == (422, {"name", "avatar", "condition", "points"})
    status, body = await call(client, "PATCH", "/api/members/me", token, json={"name": " "})
    assert (status, field_paths(body)) == (422, {"name"})
    assert await state() == before


async def test_my_points_ledger_is_mine_newest_first(client: Client, settings: Settings) -> None:
    token = await member_token(client, "13700000001")
    me = await Member.get(mobile="13700000001")
    other = await make_member("13700000002")
    await points.record_paid_order(settings, me.id, 11, 10_000)
    await points.record_paid_order(settings, other.id, 12, 50_000)
    await points.record_refund(settings, me.id, 11, "R1", 2_500)
    status, body = await call(client, "GET", "/api/members/me/points", token)
    assert status == 200
    assert (body["total"], body["page"], body["size"]) == (2, 1, 20)
    items = [
        {k: v for k, v in item.items() if k not in ("id", "created_at")} for item in body["items"]
    ]
    assert items == [
        {"kind": "revoke", "points": -25, "amount": 2_500, "order_id": 11, "note": ""},
        {"kind": "earn", "points": 100, "amount": 10_000, "order_id": 11, "note": ""},
    ]
    status, body = await call(
        client, "GET", "/api/members/me/points", token, params={"page": 2, "size": 1}
    )
    assert (status, [item["kind"] for item in body["items"]]) == (200, ["earn"])
    status, body = await call(
        client, "GET", "/api/members/me/points", token, params={"size": 101, "x": 1}
    )
    assert (status, field_paths(body)) == (422, {"size", "x"})


@pytest.mark.parametrize("caller", ["admin", "sales", "ops", "anonymous"])
async def test_only_members_have_a_membership(client: Client, caller: str) -> None:
    await make_member("13700000009")
    token = await caller_token(client, caller)
    before = await state()
    # admins pass the policy (`/api/*`) but are staff: the route is declared members-only
    code = {"anonymous": "unauthorized", "admin": "members_only"}.get(caller, "forbidden")
    expected = (401 if token is None else 403, code)
    for method, path, body in (
        ("GET", "/api/members/me", None),
        ("PATCH", "/api/members/me", {"name": "x"}),
        ("GET", "/api/members/me/points", None),
    ):
        status, answer = await call(client, method, path, token, json=body)
        assert (status, error_code(answer)) == expected, (method, path)
    assert await state() == before


# --- tags ----------------------------------------------------------------------------------


async def test_replacing_tags(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    path = f"/api/admin/members/{member.id}/tags"
    status, body = await call(
        client, "PUT", path, root, json={"tags": [" VIP ", "回头客", "VIP", "发票"]}
    )
    assert (status, body["tags"]) == (200, ["VIP", "回头客", "发票"])
    assert (await Member.get(id=member.id)).tags == ["VIP", "回头客", "发票"]
    status, body = await call(client, "PUT", path, root, json={"tags": ["VIP", "回头客", "发票"]})
    assert (status, body["tags"]) == (200, ["VIP", "回头客", "发票"])
    status, body = await call(client, "PUT", path, root, json={"tags": []})
    assert (status, body["tags"]) == (200, [])
    audit = await AuditLog.filter(action="member.tags").order_by("id")
    assert [(e.target_id, e.details) for e in audit] == [
        (str(member.id), {"changes": {"tags": [[], ["VIP", "回头客", "发票"]]}}),
        (str(member.id), {"changes": {"tags": [["VIP", "回头客", "发票"], []]}}),
    ]
    twenty = [f"t{n}" for n in range(20)]
    status, body = await call(client, "PUT", path, root, json={"tags": [*twenty, "t0"]})
    assert (status, body["tags"]) == (200, twenty)


async def test_bad_tags_change_nothing(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    await Member.filter(id=member.id).update(tags=["VIP"])
    path = f"/api/admin/members/{member.id}/tags"
    before = await state()
    for bad, paths in (
        ({"tags": [f"t{n}" for n in range(21)]}, {"tags"}),
        ({"tags": ["x" * 21, " ", "ok", "a\x00"]}, {"tags.0", "tags.1", "tags.3"}),
        ({"tags": "VIP"}, {"tags"}),
        ({"tags": [1]}, {"tags.0"}),
        ({}, {"tags"}),
        ({"tags": [], "extra": 1}, {"extra"}),
    ):
        status, body = await call(client, "PUT", path, root, json=bad)
        assert (status, field_paths(body)) == (422, paths), bad
    status, body = await call(
        client, "PUT", "/api/admin/members/987654/tags", root, json={"tags": []}
    )
    assert (status, error_code(body)) == (404, "not_found")
    assert await state() == before


# --- notes ---------------------------------------------------------------------------------


async def test_notes_written_listed_and_deleted(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    sales = await make_staff("li", ["sales"], name="李雷")
    li = await sign_in(client, "li")
    path = f"/api/admin/members/{member.id}/notes"
    status, first = await call(client, "POST", path, li, json={"body": " 电话回访：\n喜欢开发票 "})
    assert status == 201
    assert (first["body"], first["author"]) == (
        "电话回访：\n喜欢开发票",
        {"id": sales.id, "name": "李雷"},
    )
    status, second = await call(client, "POST", path, root, json={"body": "x" * 2_000})
    assert status == 201
    status, body = await call(client, "GET", path, li)
    assert status == 200
    assert [note["id"] for note in body["items"]] == [second["id"], first["id"]]
    assert body["total"] == 2
    status, body = await call(client, "GET", path, li, params={"size": 1, "page": 2})
    assert [note["id"] for note in body["items"]] == [first["id"]]

    # only the author or an admin deletes
    status, body = await call(client, "DELETE", f"{path}/{second['id']}", li)
    assert (status, error_code(body)) == (403, "not_note_author")
    status, body = await call(client, "DELETE", f"{path}/{first['id']}", li)
    assert (status, body) == (204, None)
    status, body = await call(client, "DELETE", f"{path}/{first['id']}", li)
    assert (status, error_code(body)) == (404, "not_found")
    status, body = await call(client, "DELETE", f"{path}/{second['id']}", root)
    assert status == 204
    assert await MemberNote.all().count() == 0
    audit = await AuditLog.filter(action__startswith="member.note").order_by("id")
    assert [(e.action, e.actor_id, e.details) for e in audit] == [
        ("member.note.add", sales.id, {"note_id": first["id"]}),
        ("member.note.add", audit[1].actor_id, {"note_id": second["id"]}),
        ("member.note.delete", sales.id, {"note_id": first["id"], "body": first["body"]}),
        ("member.note.delete", audit[1].actor_id, {"note_id": second["id"], "body": "x" * 2_000}),
    ]


async def test_a_note_whose_author_is_gone(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    gone = await make_staff("gone", ["sales"])
    await MemberNote.create(member_id=member.id, author_id=gone.id, body="老客户")
    await gone.delete()
    status, body = await call(client, "GET", f"/api/admin/members/{member.id}/notes", root)
    assert (status, body["items"][0]["author"], body["items"][0]["body"]) == (200, None, "老客户")


async def test_bad_notes_change_nothing(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    other = await make_member("13700000002")
    note = await MemberNote.create(member_id=member.id, body="x")
    path = f"/api/admin/members/{member.id}/notes"
    before = await state()
    for bad, paths in (
        ({"body": "x" * 2_001}, {"body"}),
        ({"body": " \n "}, {"body"}),
        ({"body": "bell\x07"}, {"body"}),
        ({"body": None}, {"body"}),
        ({"text": "x"}, {"body", "text"}),
    ):
        status, body = await call(client, "POST", path, root, json=bad)
        assert (status, field_paths(body)) == (422, paths), bad
    for method, url, sent in (
        ("POST", "/api/admin/members/987654/notes", {"body": "x"}),
        ("GET", "/api/admin/members/987654/notes", None),
        ("DELETE", f"/api/admin/members/{other.id}/notes/{note.id}", None),
        ("DELETE", f"{path}/987654", None),
        ("DELETE", f"{path}/abc", None),
    ):
        status, body = await call(client, method, url, root, json=sent)
        assert (status, error_code(body)) == (404, "not_found"), url
    assert await state() == before


# --- points --------------------------------------------------------------------------------


async def test_adjusting_points_once_per_key(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    path = f"/api/admin/members/{member.id}/points"
    status, body = await call(
        client, "POST", path, root, json={"delta": 500, "reason": " 活动补偿 "}, headers=key("a1")
    )
    assert status == 201
    entry = body["entry"]
    assert dt.datetime.fromisoformat(entry.pop("created_at")).tzinfo is not None
    assert entry == {
        "id": entry["id"],
        "kind": "adjust",
        "points": 500,
        "amount": 0,
        "order_id": None,
        "note": "活动补偿",
        "ref": "a1",
    }
    assert (body["points"], body["applied"]) == (500, True)
    # a retry: same answer, nothing applied again
    status, again = await call(
        client, "POST", path, root, json={"delta": 500, "reason": "活动补偿"}, headers=key("a1")
    )
    assert (status, again["entry"]["id"], again["points"], again["applied"]) == (
        201,
        entry["id"],
        500,
        False,
    )
    status, body = await call(
        client, "POST", path, root, json={"delta": -200, "reason": "换购", "ref": "a2"}
    )
    assert (status, body["points"], body["entry"]["ref"]) == (201, 300, "a2")
    status, body = await call(
        client,
        "POST",
        path,
        root,
        json={"delta": -200, "reason": "换购", "ref": "a3"},
        headers=key("a3"),
    )
    assert (status, body["points"]) == (201, 100)
    assert (await Member.get(id=member.id)).points == 100

    status, body = await call(client, "GET", path, root)
    assert status == 200
    assert [(e["ref"], e["points"]) for e in body["items"]] == [
        ("a3", -200),
        ("a2", -200),
        ("a1", 500),
    ]
    audit = await AuditLog.filter(action="member.points.adjust").count()
    assert audit == 3


async def test_refused_adjustments_change_nothing(client: Client, root: str) -> None:
    member = await make_member("13700000001")
    path = f"/api/admin/members/{member.id}/points"
    status, _ = await call(
        client, "POST", path, root, json={"delta": 100, "reason": "开卡"}, headers=key("k1")
    )
    assert status == 201
    before = await state()
    for sent, headers, paths in (
        ({"delta": 0, "reason": ""}, key("k2"), {"delta", "reason"}),
        ({"delta": 10**13, "reason": "x"}, key("k2"), {"delta"}),
        ({"delta": 1.5, "reason": "x", "ref": "bad key!"}, None, {"delta", "ref"}),
        ({"delta": 1, "reason": "x"}, None, {"ref"}),
        ({"delta": 1, "reason": "x"}, key("a" * 65), {"Idempotency-Key"}),
        ({"delta": 1, "reason": "x", "ref": "k2"}, key("k3"), {"ref"}),
        ({"delta": 1, "reason": "x", "who": 1}, key("k2"), {"who"}),
    ):
        status, body = await call(client, "POST", path, root, json=sent, headers=headers)
        assert (status, field_paths(body)) == (422, paths), sent
    status, body = await call(
        client, "POST", path, root, json={"delta": -101, "reason": "扣减"}, headers=key("k2")
    )
    assert (status, error_code(body), body["error"]["details"]) == (
        409,
        "insufficient_points",
        {"points": 100},
    )
    status, body = await call(
        client, "POST", path, root, json={"delta": 99, "reason": "开卡"}, headers=key("k1")
    )
    assert (status, error_code(body)) == (409, "idempotency_key_reused")
    for method in ("GET", "POST"):
        status, body = await call(
            client,
            method,
            "/api/admin/members/987654/points",
            root,
            json={"delta": 1, "reason": "x"} if method == "POST" else None,
            headers=key("k4"),
        )
        assert (status, error_code(body)) == (404, "not_found")
    assert await state() == before


async def test_a_retried_adjustment_sent_ten_times_at_once_applies_once(
    client: Client, root: str
) -> None:
    member = await make_member("13700000001")
    path = f"/api/admin/members/{member.id}/points"
    answers = await asyncio.gather(
        *(
            call(client, "POST", path, root, json={"delta": 7, "reason": "补"}, headers=key("once"))
            for _ in range(10)
        )
    )
    assert [status for status, _ in answers] == [201] * 10
    assert sorted(body["applied"] for _, body in answers) == [False] * 9 + [True]
    assert {body["entry"]["id"] for _, body in answers} == {answers[0][1]["entry"]["id"]}
    assert (await Member.get(id=member.id)).points == 7
    assert await AuditLog.filter(action="member.points.adjust").count() == 1


# --- who may ------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["sales_manager", "sales", "ops", "member", "anonymous"])
async def test_who_may_tag_note_and_adjust(client: Client, caller: str) -> None:
    member = await make_member("13700000009", condition=MemberCondition.FORMAL)
    note = await MemberNote.create(member_id=member.id, body="x")
    token = await caller_token(client, caller)
    base = f"/api/admin/members/{member.id}"
    staff = caller not in ("member", "anonymous")
    refused = (401, "unauthorized") if token is None else (403, "forbidden")

    for path in (f"{base}/notes", f"{base}/points"):
        status, body = await call(client, "GET", path, token)
        assert (status if staff else (status, error_code(body))) == (200 if staff else refused)

    before = await state()
    status, body = await call(
        client, "POST", f"{base}/points", token, json={"delta": 5, "reason": "x"}, headers=key("k")
    )
    assert (status, error_code(body)) == ((403, "forbidden") if staff else refused)
    status, body = await call(client, "PUT", f"{base}/tags", token, json={"tags": ["VIP"]})
    if caller == "sales_manager":
        assert (status, body["tags"]) == (200, ["VIP"])
    else:
        assert (status, error_code(body)) == ((403, "forbidden") if staff else refused)
    # a staff member who did not write a note may not delete it
    status, body = await call(client, "DELETE", f"{base}/notes/{note.id}", token)
    assert (status, error_code(body)) == ((403, "not_note_author") if staff else refused)
    if not staff:
        status, body = await call(client, "POST", f"{base}/notes", token, json={"body": "x"})
        assert (status, error_code(body)) == refused
        assert await state() == before


async def test_staff_may_write_notes(client: Client) -> None:
    member = await make_member("13700000009")
    for role in ("sales", "ops", "sales_manager"):
        token = await staff_token(client, f"{role}_user", [role])
        path = f"/api/admin/members/{member.id}/notes"
        status, body = await call(client, "POST", path, token, json={"body": role})
        assert status == 201, body
        status, body = await call(client, "DELETE", f"{path}/{body['id']}", token)
        assert status == 204
