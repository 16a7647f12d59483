"""People for identity tests: staff and members made in the database, signed in over HTTP."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from deer.accounts.models import Department, Member, User
from deer.accounts.passwords import hash_password
from deer.accounts.service import ensure_builtin_roles

PASSWORD = "correct-horse-9"
_HASH = hash_password(PASSWORD)  # argon2 is slow on purpose: hash once for every test


async def create_staff(
    username: str,
    *roles: str,
    department: Department | None = None,
    mobile: str | None = None,
) -> User:
    known = await ensure_builtin_roles()
    user = await User.create(
        username=username,
        name=username.title(),
        mobile=mobile,
        password_hash=_HASH,
        department=department,
    )
    for code in roles:
        await user.roles.add(known[code])
    return user


async def create_member(mobile: str, name: str = "顾客") -> Member:
    return await Member.create(mobile=mobile, name=name, password_hash=_HASH)


async def sign_in(
    client: TestClient[Any, Any], account: str, password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/api/auth/login", json={"account": account, "password": password, **extra}
    )
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
