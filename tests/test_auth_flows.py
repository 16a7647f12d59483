"""Register, sign in, refresh, sign out, change the password: the whole session life."""

from __future__ import annotations

from typing import Any

import jwt
from aiohttp.test_utils import TestClient

from deer.accounts.models import AuditLog, Member, MemberCondition, User
from deer.accounts.passwords import verify_password
from tests.auth_helpers import PASSWORD, bearer, make_member, make_staff, sign_in_tokens


async def register(client: TestClient[Any, Any], **body: Any) -> Any:
    return await client.post("/api/auth/register", json=body)


async def test_register_makes_a_signed_in_member(client: TestClient[Any, Any]) -> None:
    response = await register(client, mobile="13912345678", password="longer-pass-1", name="王芳")
    assert response.status == 201
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["user"]["kind"] == "member"
    assert body["user"]["roles"] == ["member"]
    assert body["user"]["condition"] == "potential"
    member = await Member.get(mobile="13912345678")
    assert member.name == "王芳"
    assert member.password_hash and verify_password(member.password_hash, "longer-pass-1")
    me = await client.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert (await me.json())["id"] == member.id


async def test_register_refuses_a_taken_mobile(client: TestClient[Any, Any]) -> None:
    await make_member("13912345678")
    response = await register(client, mobile="13912345678", password="longer-pass-1", name="x")
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "mobile_taken"
    assert await Member.all().count() == 1


async def test_register_validates_fields(client: TestClient[Any, Any]) -> None:
    response = await register(client, mobile="12345", password="longer-pass-1", name="")
    assert response.status == 422
    paths = {f["path"] for f in (await response.json())["error"]["details"]["fields"]}
    assert paths == {"mobile", "name"}
    weak = await register(client, mobile="13912345678", password="12345678", name="x")
    assert weak.status == 422
    assert (await weak.json())["error"]["code"] == "weak_password"
    extra = await register(
        client, mobile="13912345678", password="longer-pass-1", name="x", roles=["admin"]
    )
    assert extra.status == 422
    assert await Member.all().count() == 0


async def test_staff_sign_in_by_username_or_mobile(client: TestClient[Any, Any]) -> None:
    user = await make_staff("li.na", ["sales"], mobile="13800000001")
    by_name = await sign_in_tokens(client, "li.na")
    by_mobile = await sign_in_tokens(client, "13800000001")
    assert by_name["user"]["id"] == by_mobile["user"]["id"] == user.id
    assert by_name["user"]["roles"] == ["sales"]
    await user.refresh_from_db()
    assert user.last_login_at is not None
    assert user.last_login_ip == "127.0.0.1"


async def test_member_sign_in_by_mobile(client: TestClient[Any, Any]) -> None:
    member = await make_member("13700000002")
    body = await sign_in_tokens(client, "13700000002", kind="member")
    assert body["user"] == {
        "kind": "member",
        "id": member.id,
        "name": "顾客",
        "roles": ["member"],
        "mobile": "13700000002",
        "department_id": None,
        "username": None,
        "email": None,
        "position_id": None,
        "avatar": None,
        "condition": "potential",
        "level": 0,
        "points": 0,
    }


async def test_wrong_password_and_unknown_account_look_the_same(
    client: TestClient[Any, Any],
) -> None:
    await make_staff("li.na", ["sales"])
    wrong = await client.post("/api/auth/login", json={"account": "li.na", "password": "nope-nope"})
    unknown = await client.post("/api/auth/login", json={"account": "ghost", "password": "x"})
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["error"] == (await unknown.json())["error"]
    assert (await wrong.json())["error"]["code"] == "bad_credentials"
    results = await AuditLog.filter(action="auth.login").values_list("result", flat=True)
    assert sorted(results) == ["failed", "failed"]  # type: ignore[type-var]


async def test_frozen_member_and_disabled_staff_cannot_sign_in(
    client: TestClient[Any, Any],
) -> None:
    member = await make_member("13700000002")
    await Member.filter(id=member.id).update(condition=MemberCondition.FROZEN)
    frozen = await client.post(
        "/api/auth/login", json={"account": "13700000002", "password": PASSWORD}
    )
    assert frozen.status == 403
    assert (await frozen.json())["error"]["code"] == "account_disabled"
    user = await make_staff("li.na", ["sales"])
    await User.filter(id=user.id).update(status="disabled")
    disabled = await client.post("/api/auth/login", json={"account": "li.na", "password": PASSWORD})
    assert disabled.status == 403


async def test_refresh_rotates_and_keeps_roles_current(client: TestClient[Any, Any]) -> None:
    await make_staff("li.na", ["sales"])
    first = await sign_in_tokens(client, "li.na")
    response = await client.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert response.status == 200
    second = await response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    old = jwt.decode(first["refresh_token"], options={"verify_signature": False})
    new = jwt.decode(second["refresh_token"], options={"verify_signature": False})
    assert old["fam"] == new["fam"]
    me = await client.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert me.status == 200


async def test_logout_ends_access_and_refresh(client: TestClient[Any, Any]) -> None:
    await make_staff("li.na", ["sales"])
    tokens = await sign_in_tokens(client, "li.na")
    other = await sign_in_tokens(client, "li.na")  # another device stays signed in
    assert (
        await client.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    ).status == 204
    me = await client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert (await me.json())["error"]["code"] == "token_revoked"
    refresh = await client.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status == 401
    assert (await client.get("/api/auth/me", headers=bearer(other["access_token"]))).status == 200


async def test_password_change_ends_every_other_session(client: TestClient[Any, Any]) -> None:
    await make_staff("li.na", ["sales"])
    phone = await sign_in_tokens(client, "li.na")
    laptop = await sign_in_tokens(client, "li.na")
    response = await client.post(
        "/api/auth/password",
        headers=bearer(laptop["access_token"]),
        json={"current_password": PASSWORD, "new_password": "brand-new-pass-2"},
    )
    assert response.status == 200
    fresh = await response.json()
    for old in (phone, laptop):
        me = await client.get("/api/auth/me", headers=bearer(old["access_token"]))
        assert (await me.json())["error"]["code"] == "token_revoked"
        refresh = await client.post(
            "/api/auth/refresh", json={"refresh_token": old["refresh_token"]}
        )
        assert refresh.status == 401
    assert (await client.get("/api/auth/me", headers=bearer(fresh["access_token"]))).status == 200
    await sign_in_tokens(client, "li.na", "brand-new-pass-2")
    old_password = await client.post(
        "/api/auth/login", json={"account": "li.na", "password": PASSWORD}
    )
    assert old_password.status == 401


async def test_password_change_needs_the_current_password(client: TestClient[Any, Any]) -> None:
    user = await make_staff("li.na", ["sales"])
    tokens = await sign_in_tokens(client, "li.na")
    before = (await User.get(id=user.id)).password_hash
    wrong = await client.post(
        "/api/auth/password",
        headers=bearer(tokens["access_token"]),
        json={"current_password": "not-it-at-all", "new_password": "brand-new-pass-2"},
    )
    assert wrong.status == 422
    assert (await wrong.json())["error"]["code"] == "wrong_password"
    weak = await client.post(
        "/api/auth/password",
        headers=bearer(tokens["access_token"]),
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    assert (await weak.json())["error"]["code"] == "weak_password"
    assert (await User.get(id=user.id)).password_hash == before
    assert (await client.get("/api/auth/me", headers=bearer(tokens["access_token"]))).status == 200


async def test_a_username_that_looks_like_a_mobile_wins_over_a_mobile(
    client: TestClient[Any, Any],
) -> None:
    named = await make_staff("13800000009", ["sales"])
    await make_staff("other", ["ops"], mobile="13800000009")
    body = await sign_in_tokens(client, "13800000009")
    assert body["user"]["id"] == named.id


async def test_mobile_numbers_take_only_ascii_digits(client: TestClient[Any, Any]) -> None:
    response = await register(client, mobile="1391234567٨", password="longer-pass-1", name="x")
    assert response.status == 422
    assert await Member.all().count() == 0
