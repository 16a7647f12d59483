"""The demo data set: exact counts, a consistent shape, idempotent and safe to run concurrently."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from config.settings import Settings
from deer.accounts.models import Department, Member, MemberCondition, Role, User
from deer.accounts.passwords import verify_password
from deer.catalog.models import Category, Product, ProductStatus
from deer.db import database
from deer.demo import DEMO_PASSWORD, LEVEL_THRESHOLDS, count_rows, seed_demo

EXPECTED = {"departments": 6, "staff": 13, "categories": 30, "products": 120, "members": 200}
STAFF_ROLES = ("admin", "sales_manager", "sales", "ops")
USER_ROLE_LINKS = 15  # the two group managers also sell
MOBILE = re.compile(r"1[358]\d{9}")


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[None]:
    async with database(settings):
        yield


@pytest.fixture
async def seeded(db: None) -> dict[str, int]:
    return await seed_demo(progress=False)


async def user_role_links() -> int:
    return sum([await User.filter(roles__code=code).count() for code in STAFF_ROLES])


def test_seeding_reports_the_exact_counts(seeded: dict[str, int]) -> None:
    assert seeded == EXPECTED


async def test_departments_form_the_documented_tree_with_managers(seeded: dict[str, int]) -> None:
    rows = await Department.all().values("name", "parent__name", "manager__username")
    assert {row["name"]: (row["parent__name"], row["manager__username"]) for row in rows} == {
        "总经办": (None, "demo_admin"),
        "销售部": ("总经办", "demo_wangfang"),
        "华东销售组": ("销售部", "demo_liqiang"),
        "华南销售组": ("销售部", "demo_chenjing"),
        "运营部": ("总经办", "demo_lina"),
        "客服部": ("总经办", "demo_huangli"),
    }


async def test_every_staff_user_has_a_role_and_a_department(seeded: dict[str, int]) -> None:
    users = await User.all().prefetch_related("roles", "department")
    assert len(users) == EXPECTED["staff"]
    for user in users:
        assert user.department is not None, user.username
        assert [role.code for role in user.roles], user.username
        assert MOBILE.fullmatch(user.mobile or ""), user.mobile
    assert len({user.mobile for user in users}) == len(users)
    assert await user_role_links() == USER_ROLE_LINKS


async def test_every_builtin_staff_role_has_a_user(seeded: dict[str, int]) -> None:
    for code in STAFF_ROLES:
        assert await User.filter(roles__code=code).exists(), code
    assert {role.code for role in await Role.all()} == {*STAFF_ROLES, "member"}


async def test_the_demo_password_opens_every_demo_account(seeded: dict[str, int]) -> None:
    admin = await User.get(username="demo_admin")
    assert verify_password(admin.password_hash, DEMO_PASSWORD)
    assert not verify_password(admin.password_hash, DEMO_PASSWORD + "!")
    hashes = {user.password_hash for user in await User.all()}
    assert hashes == {admin.password_hash}  # hashed once, shared by all


async def test_categories_form_a_two_level_tree(seeded: dict[str, int]) -> None:
    rows = await Category.all().values("id", "name", "parent_id")
    parents = {row["id"]: row["parent_id"] for row in rows}
    tops = {row["name"] for row in rows if row["parent_id"] is None}
    assert tops == {"数码家电", "服饰鞋包", "食品生鲜", "美妆个护", "家居日用", "办公用品"}
    children = Counter(row["parent_id"] for row in rows if row["parent_id"] is not None)
    assert all(parents[parent] is None for parent in children)
    assert sorted(children.values()) == [3, 4, 4, 4, 4, 5]
    assert len({(row["name"], row["parent_id"]) for row in rows}) == len(rows)


async def test_products_have_a_margin_stock_and_a_leaf_category(seeded: dict[str, int]) -> None:
    products = await Product.all().prefetch_related("category").order_by("code")
    assert [p.code for p in products] == [f"SKU-{n:04d}" for n in range(1, 121)]
    for product in products:
        assert 0 < product.cost < product.price, product.code
        assert 0 <= product.stock <= 500, product.code
        assert product.category.parent_id is not None, product.code  # type: ignore[attr-defined]
        assert product.channels and set(product.channels) <= {"mini_program", "web"}
        assert product.images[0] == f"/static/demo/{product.code}-1.jpg"
        assert product.name and product.description
    statuses = Counter(p.status for p in products)
    assert set(statuses) == {ProductStatus.ONLINE, ProductStatus.DRAFT, ProductStatus.OFFLINE}
    assert statuses[ProductStatus.ONLINE] > len(products) // 2
    assert any(p.stock == 0 for p in products)
    assert all(p.sales == 0 for p in products if p.status == ProductStatus.DRAFT)


async def test_member_points_and_level_follow_spend(seeded: dict[str, int]) -> None:
    members = await Member.all()
    assert len(members) == EXPECTED["members"]
    for member in members:
        assert member.points == member.total_spent // 100, member.mobile
        reached = [
            level for level, floor in enumerate(LEVEL_THRESHOLDS) if member.total_spent >= floor
        ]
        assert member.level == reached[-1], member.mobile
        if member.condition == MemberCondition.FORMAL:
            assert member.total_spent > 0, member.mobile
        else:
            assert member.condition == MemberCondition.POTENTIAL
            assert member.total_spent == 0, member.mobile
        assert MOBILE.fullmatch(member.mobile or ""), member.mobile
    conditions = Counter(member.condition for member in members)
    assert conditions[MemberCondition.FORMAL] > 0 and conditions[MemberCondition.POTENTIAL] > 0
    assert set(Counter(member.level for member in members)) == {0, 1, 2, 3}


async def snapshot() -> tuple[object, ...]:
    """What a second seed must leave untouched."""
    return (
        await count_rows(),
        await Department.all().order_by("id").values_list("id", "name", "parent_id", "manager_id"),
        await User.all().order_by("id").values_list("id", "username", "password_hash"),
        await Category.all().order_by("id").values_list("id", "name", "parent_id"),
        await Product.all().order_by("id").values_list("id", "code", "price", "cost", "stock"),
        await Member.all().order_by("id").values_list("id", "mobile", "total_spent", "level"),
        await user_role_links(),
    )


async def test_seeding_twice_changes_nothing(seeded: dict[str, int]) -> None:
    before = await snapshot()
    assert await seed_demo(progress=False) == EXPECTED
    assert await snapshot() == before


async def test_two_concurrent_seeds_load_the_data_set_once(db: None) -> None:
    results = await asyncio.gather(seed_demo(progress=False), seed_demo(progress=False))
    assert list(results) == [EXPECTED, EXPECTED]
    assert await count_rows() == EXPECTED
    assert await user_role_links() == USER_ROLE_LINKS
    assert await Role.all().count() == 5


async def test_progress_bar_goes_to_stderr(db: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert await seed_demo(progress=True) == EXPECTED
    captured = capsys.readouterr()
    assert "demo data" in captured.err and "6/6" in captured.err
    assert captured.out == ""
