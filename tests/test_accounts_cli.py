"""Creating the first admin: password policy, roles, duplicates refused without changes."""

from __future__ import annotations

import pytest

from config.settings import Settings
from deer.accounts.models import Role, User
from deer.accounts.passwords import WeakPassword, verify_password
from deer.accounts.service import BUILTIN_ROLES, create_admin
from deer.db import database
from deer.errors import Conflict


async def test_create_admin_gives_the_admin_role(settings: Settings) -> None:
    async with database(settings):
        user = await create_admin("boss", "correct-horse-1", "老板", "13800000001")
        stored = await User.get(id=user.id).prefetch_related("roles")
        assert [role.code for role in stored.roles] == ["admin"]
        assert stored.password_hash.startswith("$argon2id$")
        assert verify_password(stored.password_hash, "correct-horse-1")
        assert not verify_password(stored.password_hash, "wrong-horse-1")
        assert sorted(await Role.all().values_list("code", flat=True)) == sorted(BUILTIN_ROLES)


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short1", "at least 8"), ("1234567890", "only digits"), ("x" * 129, "at most 128")],
)
async def test_weak_passwords_are_refused(settings: Settings, password: str, reason: str) -> None:
    async with database(settings):
        with pytest.raises(WeakPassword, match=reason):
            await create_admin("boss", password, "老板", None)
        assert await User.all().count() == 0


async def test_duplicates_are_refused_and_change_nothing(settings: Settings) -> None:
    async with database(settings):
        first = await create_admin("boss", "correct-horse-1", "老板", "13800000001")
        with pytest.raises(Conflict) as taken:
            await create_admin("boss", "another-pass-2", "别人", None)
        assert taken.value.code == "username_taken"
        with pytest.raises(Conflict) as mobile:
            await create_admin("boss2", "another-pass-2", "别人", "13800000001")
        assert mobile.value.code == "mobile_taken"
        assert await User.all().values_list("id", flat=True) == [first.id]


async def test_concurrent_creation_of_one_name_makes_one_user(settings: Settings) -> None:
    import asyncio

    async with database(settings):
        results = await asyncio.gather(
            *(create_admin("boss", "correct-horse-1", "老板", None) for _ in range(5)),
            return_exceptions=True,
        )
        created = [r for r in results if isinstance(r, User)]
        refused = [r for r in results if isinstance(r, Conflict)]
        assert len(created) == 1
        assert len(refused) == 4
        assert {r.code for r in refused} == {"username_taken"}
        assert await User.all().count() == 1
