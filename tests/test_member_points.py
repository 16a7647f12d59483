"""Member points, spend and levels as the order actor and staff change them: each cause once,
however often and however concurrently it is applied."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.settings import Settings
from deer.accounts import points
from deer.accounts.audit import SYSTEM, Actor
from deer.accounts.errors import IdempotencyKeyReused, InsufficientPoints
from deer.accounts.models import AuditLog, Member, MemberCondition, PointsEntry
from deer.accounts.tokens import Principal
from deer.errors import NotFound
from tests.auth_helpers import make_member, make_staff

Client = TestClient[Any, Any]
THRESHOLDS = (0, 100_000, 500_000, 2_000_000, 10_000_000)  # the defaults, in fen


async def counters(member_id: int) -> tuple[Any, ...]:
    member = await Member.get(id=member_id)
    return (
        member.points,
        member.total_spent,
        member.paid_orders,
        member.condition,
        member.level,
    )


async def ledger(member_id: int) -> list[tuple[str, str, int, int, int | None]]:
    rows = await PointsEntry.filter(member_id=member_id).order_by("id")
    return [(e.kind, e.ref, e.points, e.amount, e.order_id) for e in rows]


async def staff_actor() -> Actor:
    user = await make_staff("points_admin", ["admin"])
    principal = Principal("staff", user.id, ("admin",), None, "jti", "family", 0)
    return Actor(principal, SYSTEM)


def test_level_of_and_the_next_level() -> None:
    assert [points.level_of(spent, THRESHOLDS) for spent in (0, 99_999, 100_000)] == [0, 0, 1]
    assert points.level_of(10_000_000, THRESHOLDS) == 4
    assert points.level_of(10**15, THRESHOLDS) == 4
    assert points.next_level(0, THRESHOLDS) == points.NextLevel(1, 100_000, 100_000)
    assert points.next_level(499_000, THRESHOLDS) == points.NextLevel(2, 500_000, 1_000)
    assert points.next_level(500_000, THRESHOLDS) == points.NextLevel(3, 2_000_000, 1_500_000)
    assert points.next_level(10_000_000, THRESHOLDS) is None
    assert points.next_level(5, (0,)) is None


async def test_a_paid_order_applied_twenty_times_at_once_counts_once(
    client: Client, settings: Settings
) -> None:
    member = await make_member("13700000001")
    results = await asyncio.gather(
        *(points.record_paid_order(settings, member.id, 7, 123_456) for _ in range(20))
    )
    assert sorted(results) == [False] * 19 + [True]
    # 1,234.56 yuan at 1 point per yuan: 1,234 points; level 1 starts at 1,000 yuan
    assert await counters(member.id) == (1_234, 123_456, 1, MemberCondition.FORMAL, 1)
    assert await ledger(member.id) == [("earn", "order:7", 1_234, 123_456, 7)]
    assert await points.record_paid_order(settings, member.id, 7, 123_456) is False
    assert await counters(member.id) == (1_234, 123_456, 1, MemberCondition.FORMAL, 1)


async def test_orders_add_up_and_cross_levels(client: Client, make_settings: Any) -> None:
    settings = make_settings(member_points_per_yuan=3)
    member = await make_member("13700000001")
    assert await points.record_paid_order(settings, member.id, 1, 99_999)
    # 999.99 yuan * 3 = 2,999.97: whole points only
    assert await counters(member.id) == (2_999, 99_999, 1, MemberCondition.FORMAL, 0)
    assert await points.record_paid_order(settings, member.id, 2, 400_001)
    assert await counters(member.id) == (2_999 + 12_000, 500_000, 2, MemberCondition.FORMAL, 2)
    assert await points.record_paid_order(settings, member.id, 3, 0)
    assert await counters(member.id) == (14_999, 500_000, 3, MemberCondition.FORMAL, 2)


async def test_different_orders_at_once_all_count(client: Client, settings: Settings) -> None:
    member = await make_member("13700000001")
    results = await asyncio.gather(
        *(points.record_paid_order(settings, member.id, order, 10_050) for order in range(20))
    )
    assert results == [True] * 20
    # 20 x 100.50 yuan = 2,010 yuan: 20 x 100 points (each order rounds down on its own)
    assert await counters(member.id) == (2_000, 201_000, 20, MemberCondition.FORMAL, 1)


async def test_frozen_and_expired_members_keep_their_condition_and_still_earn(
    client: Client, settings: Settings
) -> None:
    frozen = await make_member("13700000001", condition=MemberCondition.FROZEN)
    expired = await make_member("13700000002", condition=MemberCondition.EXPIRED)
    for member in (frozen, expired):
        assert await points.record_paid_order(settings, member.id, member.id, 150_000)
    assert await counters(frozen.id) == (1_500, 150_000, 1, MemberCondition.FROZEN, 1)
    assert await counters(expired.id) == (1_500, 150_000, 1, MemberCondition.EXPIRED, 1)


async def test_refunds_take_back_their_share_and_the_level_drops(
    client: Client, settings: Settings
) -> None:
    member = await make_member("13700000001")
    await points.record_paid_order(settings, member.id, 1, 100_000)  # 1,000 yuan
    await points.record_paid_order(settings, member.id, 2, 33_333)  # 333.33 yuan
    assert await counters(member.id) == (1_333, 133_333, 2, MemberCondition.FORMAL, 1)

    # a third of order 2: 111.11 yuan, floor(333 * 11,111 / 33,333) = 111 points
    results = await asyncio.gather(
        *(points.record_refund(settings, member.id, 2, "R1", 11_111) for _ in range(10))
    )
    assert sorted(results) == [False] * 9 + [True]
    assert await counters(member.id) == (1_222, 122_222, 2, MemberCondition.FORMAL, 1)
    # the rest of order 2: its last 222 points, whatever the rounding of each part
    assert await points.record_refund(settings, member.id, 2, "R2", 22_222)
    assert await counters(member.id) == (1_000, 100_000, 2, MemberCondition.FORMAL, 1)
    # 1 fen of order 1 drops the member below level 1
    assert await points.record_refund(settings, member.id, 1, "R3", 1)
    assert await counters(member.id) == (1_000, 99_999, 2, MemberCondition.FORMAL, 0)
    # more than the order still counts: only what it counts is taken back
    assert await points.record_refund(settings, member.id, 1, "R4", 500_000)
    assert await counters(member.id) == (0, 0, 2, MemberCondition.FORMAL, 0)
    assert await ledger(member.id) == [
        ("earn", "order:1", 1_000, 100_000, 1),
        ("earn", "order:2", 333, 33_333, 2),
        ("revoke", "refund:R1", -111, 11_111, 2),
        ("revoke", "refund:R2", -222, 22_222, 2),
        ("revoke", "refund:R3", 0, 1, 1),
        ("revoke", "refund:R4", -1_000, 500_000, 1),
    ]
    assert await points.record_refund(settings, member.id, 1, "R3", 1) is False


async def test_a_refund_never_takes_points_below_zero(client: Client, settings: Settings) -> None:
    member = await make_member("13700000001")
    actor = await staff_actor()
    await points.record_paid_order(settings, member.id, 1, 10_000)
    await points.adjust_points(actor, member.id, -80, "换购", "spend-1")
    assert await points.record_refund(settings, member.id, 1, "R1", 10_000)
    assert await counters(member.id) == (0, 0, 1, MemberCondition.FORMAL, 0)
    assert (await ledger(member.id))[-1] == ("revoke", "refund:R1", -20, 10_000, 1)


async def test_a_refund_of_an_order_never_counted_takes_no_spend(
    client: Client, settings: Settings
) -> None:
    member = await make_member("13700000001")
    await points.record_paid_order(settings, member.id, 1, 10_000)
    assert await points.record_refund(settings, member.id, 2, "R1", 5_000)
    assert await counters(member.id) == (100, 10_000, 1, MemberCondition.FORMAL, 0)


async def test_unknown_members_and_negative_amounts(client: Client, settings: Settings) -> None:
    with pytest.raises(NotFound):
        await points.record_paid_order(settings, 987654, 1, 100)
    with pytest.raises(NotFound):
        await points.record_refund(settings, 987654, 1, "R1", 100)
    member = await make_member("13700000001")
    with pytest.raises(ValueError, match="paid amount cannot be negative"):
        await points.record_paid_order(settings, member.id, 1, -1)
    with pytest.raises(ValueError, match="refunded amount cannot be negative"):
        await points.record_refund(settings, member.id, 1, "R1", -1)
    assert await PointsEntry.all().count() == 0


async def test_adjustments_never_go_below_zero_and_apply_once_per_ref(client: Client) -> None:
    member = await make_member("13700000001")
    actor = await staff_actor()
    added = await points.adjust_points(actor, member.id, 100, "补偿", "k1")
    assert (added.applied, added.points, added.entry.points, added.entry.note) == (
        True,
        100,
        100,
        "补偿",
    )
    again = await points.adjust_points(actor, member.id, 100, "补偿", "k1")
    assert (again.applied, again.points, again.entry.id) == (False, 100, added.entry.id)
    with pytest.raises(IdempotencyKeyReused):
        await points.adjust_points(actor, member.id, 90, "补偿", "k1")
    with pytest.raises(InsufficientPoints) as refused:
        await points.adjust_points(actor, member.id, -101, "扣减", "k2")
    assert refused.value.details == {"points": 100}
    assert (await Member.get(id=member.id)).points == 100
    assert await ledger(member.id) == [("adjust", "k1", 100, 0, None)]
    audit = await AuditLog.filter(action="member.points.adjust").values_list("details", flat=True)
    assert audit == [{"delta": 100, "reason": "补偿", "ref": "k1", "points": [0, 100]}]
    with pytest.raises(NotFound):
        await points.adjust_points(actor, 987654, 1, "x", "k3")


async def test_concurrent_deductions_stop_at_zero(client: Client) -> None:
    member = await make_member("13700000001")
    actor = await staff_actor()
    await points.adjust_points(actor, member.id, 100, "开卡", "start")

    async def take(n: int) -> bool:
        try:
            await points.adjust_points(actor, member.id, -15, "换购", f"take-{n}")
        except InsufficientPoints:
            return False
        return True

    results = await asyncio.gather(*(take(n) for n in range(12)))
    assert results.count(True) == 6
    assert (await Member.get(id=member.id)).points == 10
    assert await PointsEntry.filter(member_id=member.id, kind="adjust").count() == 7
    assert await AuditLog.filter(action="member.points.adjust").count() == 7
