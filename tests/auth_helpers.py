"""Callers for API tests: staff and members made directly in the database, signed in through
`POST /api/auth/login` like any client, bearer headers, and a compact way to call the API
with their token.

Use inside a test that holds the `client` fixture (the app's database is open then). The
`root` fixture (an admin's token) comes with `from tests.auth_helpers import root_fixture`
(`# noqa: F401`) in the test module.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import pytest
from aiohttp.test_utils import TestClient

from deer.accounts.models import Member, MemberCondition, Role, User, UserStatus
from deer.accounts.passwords import hash_password
from deer.accounts.service import ensure_builtin_roles

PASSWORD: Final = "correct-horse-7"
_hashes: dict[str, str] = {}  # argon2 is slow on purpose: hash each test password once


async def password_hash(password: str) -> str:
    if password not in _hashes:
        _hashes[password] = await asyncio.to_thread(hash_password, password)
    return _hashes[password]


async def make_staff(
    username: str,
    roles: Sequence[str] = (),
    department_id: int | None = None,
    password: str = PASSWORD,
    *,
    name: str | None = None,
    mobile: str | None = None,
    position_id: int | None = None,
    status: UserStatus = UserStatus.ACTIVE,
) -> User:
    """A staff user with these role codes (built-in roles are created when missing)."""
    await ensure_builtin_roles()
    user = await User.create(
        username=username,
        name=name or username.title(),
        mobile=mobile,
        password_hash=await password_hash(password),
        department_id=department_id,
        position_id=position_id,
        status=status,
    )
    if roles:
        found = {role.code: role for role in await Role.filter(code__in=list(roles))}
        await user.roles.add(*(found[code] for code in roles))
    return user


async def make_member(
    mobile: str,
    password: str = PASSWORD,
    *,
    name: str = "顾客",
    condition: MemberCondition = MemberCondition.POTENTIAL,
) -> Member:
    return await Member.create(
        mobile=mobile, name=name, password_hash=await password_hash(password), condition=condition
    )


async def login(
    client: TestClient[Any, Any], account: str, password: str = PASSWORD, kind: str | None = None
) -> tuple[int, dict[str, Any]]:
    """`POST /api/auth/login` as it answered: status and body."""
    body: dict[str, Any] = {"account": account, "password": password}
    if kind is not None:
        body["kind"] = kind
    response = await client.post("/api/auth/login", json=body)
    payload: dict[str, Any] = await response.json()
    return response.status, payload


async def sign_in_tokens(
    client: TestClient[Any, Any], account: str, password: str = PASSWORD, kind: str | None = None
) -> dict[str, Any]:
    """The body of a successful sign-in: the token pair and who signed in."""
    status, body = await login(client, account, password, kind)
    assert status == 200, body
    return body


async def sign_in(
    client: TestClient[Any, Any], username: str, password: str = PASSWORD, kind: str | None = None
) -> str:
    """The access token of a successful sign-in."""
    token: str = (await sign_in_tokens(client, username, password, kind))["access_token"]
    return token


async def staff_token(
    client: TestClient[Any, Any],
    username: str,
    roles: Sequence[str] = (),
    department_id: int | None = None,
) -> str:
    """Make a staff user and sign them in."""
    await make_staff(username, roles, department_id)
    return await sign_in(client, username)


async def member_token(client: TestClient[Any, Any], mobile: str) -> str:
    await make_member(mobile)
    return await sign_in(client, mobile, kind="member")


async def caller_token(
    client: TestClient[Any, Any], caller: str, department_id: int | None = None
) -> str | None:
    """The token of a caller a test is parametrised with: `anonymous` (no token), `member`,
    or a staff user `<caller>_user` holding the role `caller`."""
    if caller == "anonymous":
        return None
    if caller == "member":
        return await member_token(client, "13700000001")
    return await staff_token(client, f"{caller}_user", [caller], department_id)


@pytest.fixture(name="root")
async def root_fixture(client: TestClient[Any, Any]) -> str:
    """The access token of an admin, `root`."""
    return await staff_token(client, "root", ["admin"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    token: str | None = None,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One request with an optional bearer token: its status and JSON body (None if empty)."""
    sent = {**(bearer(token) if token is not None else {}), **(headers or {})}
    response = await client.request(method, path, json=json, params=params, headers=sent)
    text = await response.text()
    if not text:
        return response.status, None
    return response.status, await response.json()


def error_code(body: Any) -> str:
    code: str = body["error"]["code"]
    return code


def field_paths(body: Any) -> set[str]:
    """The `details.fields[*].path` of a 422."""
    return {field["path"] for field in body["error"]["details"]["fields"]}
