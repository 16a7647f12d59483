"""Member points, spend and level: the ledger (`points_entry`) and the counters on `member`.

Every change is one cause with one ledger entry, unique per `(member, kind, ref)`: a paid order
(`earn`, `order:<id>`), a refund (`revoke`, `refund:<refund no>`), a staff adjustment
(`adjust`, the client's idempotency key). Each change is ONE SQL statement that locks the
member row, inserts the entry `ON CONFLICT DO NOTHING`, and updates the member's counters
only when the entry was inserted: applying the same cause twice, or twenty times at once,
counts it once, and a statement needs no transaction around it. The order actor calls
`record_paid_order` and `record_refund` inside its turns, so a turn that is retried after a
crash applies them again harmlessly.

Levels: level `n` starts at `thresholds[n]` fen of cumulative spend (paid minus refunded),
`thresholds[0]` is 0; the level is recomputed in the same statement that moves the spend.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from tortoise.connection import get_connection
from tortoise.transactions import in_transaction

from config.settings import Settings
from deer.accounts.admin_common import Page, Paging, paged
from deer.accounts.audit import Actor, record_by
from deer.accounts.errors import IdempotencyKeyReused, InsufficientPoints
from deer.accounts.models import Member, PointsEntry
from deer.errors import NotFound


class PointsKind(StrEnum):
    EARN = "earn"  # a paid order
    REVOKE = "revoke"  # a refund takes back its share of the order's points and spend
    ADJUST = "adjust"  # staff, with a reason


def level_of(total_spent: int, thresholds: Sequence[int]) -> int:
    """The level of a cumulative spend (fen): the last threshold it reaches."""
    return max(bisect.bisect_right(thresholds, total_spent) - 1, 0)


@dataclass(frozen=True)
class NextLevel:
    level: int
    spend: int  # fen of cumulative spend the level starts at
    missing: int  # fen still to spend


def next_level(total_spent: int, thresholds: Sequence[int]) -> NextLevel | None:
    """The level after the one `total_spent` reaches, or None at the top."""
    following = level_of(total_spent, thresholds) + 1
    if following >= len(thresholds):
        return None
    spend = thresholds[following]
    return NextLevel(following, spend, spend - total_spent)


def order_ref(order_id: int) -> str:
    return f"order:{order_id}"


def refund_ref(refund_no: str) -> str:
    return f"refund:{refund_no}"


def _level(thresholds: str, total: str) -> str:
    """SQL for `level_of(total, thresholds)`: thresholds reached, minus the first."""
    return (
        f"(SELECT count(*) FROM unnest({thresholds}::bigint[]) AS t(at) WHERE t.at <= {total}) - 1"
    )


# $1 member, $2 ref, $3 points, $4 amount, $5 order id, $6 thresholds.
# `holder` locks the member first: a concurrent call for the same cause waits here and then
# finds the entry committed (DO NOTHING); the UPDATE sees the newest row (the lock is ours).
_EARN: Final = f"""
WITH holder AS (
    SELECT id FROM member WHERE id = $1 FOR UPDATE
), entry AS (
    INSERT INTO points_entry (member_id, kind, ref, points, amount, order_id, note, created_at)
    SELECT id, 'earn', $2, $3, $4, $5, '', now() FROM holder
    ON CONFLICT (member_id, kind, ref) DO NOTHING
    RETURNING points, amount
), applied AS (
    UPDATE member SET
        points = member.points + entry.points,
        total_spent = member.total_spent + entry.amount,
        paid_orders = member.paid_orders + 1,
        condition = CASE member.condition WHEN 'potential' THEN 'formal' ELSE member.condition END,
        level = {_level("$6", "member.total_spent + entry.amount")},
        updated_at = now()
    FROM entry WHERE member.id = $1
    RETURNING member.id
)
SELECT EXISTS (SELECT 1 FROM holder) AS known, EXISTS (SELECT 1 FROM applied) AS applied
"""

# $1 member, $2 order id, $3 ref, $4 refunded amount, $5 thresholds.
# The refund takes back at most what the order still counts towards the spend (`taken`), and
# the points in proportion: after refunds totalling r of an order paid p that earned e, the
# revoked points are floor(e * r / p) in all (a full refund revokes exactly e), never more
# than the member has. The order actor refunds one order at a time, so the sums read here
# are current.
_REVOKE: Final = f"""
WITH holder AS (
    SELECT id, points FROM member WHERE id = $1 FOR UPDATE
), earned AS (
    SELECT coalesce(sum(points), 0)::numeric AS points, coalesce(sum(amount), 0) AS paid
    FROM points_entry WHERE member_id = $1 AND kind = 'earn' AND order_id = $2
), before AS (
    SELECT LEAST(coalesce(sum(amount), 0), (SELECT paid FROM earned)) AS refunded
    FROM points_entry WHERE member_id = $1 AND kind = 'revoke' AND order_id = $2
), share AS (
    SELECT taken, CASE WHEN paid = 0 THEN 0 ELSE
        div(points * (refunded + taken), paid) - div(points * refunded, paid) END AS points
    FROM earned, before, LATERAL (SELECT LEAST($4::bigint, paid - refunded) AS taken) AS t
), entry AS (
    INSERT INTO points_entry (member_id, kind, ref, points, amount, order_id, note, created_at)
    SELECT holder.id, 'revoke', $3, -LEAST(share.points, holder.points), $4::bigint, $2, '', now()
    FROM holder, share
    ON CONFLICT (member_id, kind, ref) DO NOTHING
    RETURNING points
), applied AS (
    UPDATE member SET
        points = member.points + entry.points,
        total_spent = GREATEST(member.total_spent - share.taken, 0),
        level = {_level("$5", "GREATEST(member.total_spent - share.taken, 0)")},
        updated_at = now()
    FROM entry, share WHERE member.id = $1
    RETURNING member.id
)
SELECT EXISTS (SELECT 1 FROM holder) AS known, EXISTS (SELECT 1 FROM applied) AS applied
"""

# $1 member, $2 ref, $3 delta, $4 reason. No entry when the balance would go below zero.
_ADJUST: Final = """
WITH holder AS (
    SELECT id, points FROM member WHERE id = $1 FOR UPDATE
), entry AS (
    INSERT INTO points_entry (member_id, kind, ref, points, amount, order_id, note, created_at)
    SELECT id, 'adjust', $2, $3::bigint, 0, NULL, $4, now() FROM holder
    WHERE points + $3::bigint >= 0
    ON CONFLICT (member_id, kind, ref) DO NOTHING
    RETURNING id, points
), applied AS (
    UPDATE member SET points = member.points + entry.points, updated_at = now()
    FROM entry WHERE member.id = $1
    RETURNING member.points
)
SELECT (SELECT points FROM holder) AS before, (SELECT id FROM entry) AS entry_id,
    (SELECT points FROM applied) AS after
"""


async def _run(sql: str, values: list[Any]) -> dict[str, Any]:
    rows = await get_connection("default").execute_query_dict(sql, values)
    return rows[0]


def _applied(row: dict[str, Any], member_id: int) -> bool:
    if not row["known"]:
        raise NotFound(f"no member has the id {member_id}")
    return bool(row["applied"])


async def record_paid_order(settings: Settings, member_id: int, order_id: int, amount: int) -> bool:
    """Count a paid order (`amount` fen paid) once: points, spend, paid orders, level, and
    `potential` becomes `formal` (frozen and expired members keep their condition).

    True when this call applied it, False when it had been applied already.
    """
    if amount < 0:
        raise ValueError(f"a paid amount cannot be negative: {amount}")
    points = amount * settings.member_points_per_yuan // 100
    thresholds = list(settings.member_level_thresholds)
    row = await _run(_EARN, [member_id, order_ref(order_id), points, amount, order_id, thresholds])
    return _applied(row, member_id)


async def record_refund(
    settings: Settings, member_id: int, order_id: int, refund_no: str, amount: int
) -> bool:
    """Take back a refund's share of an order (`amount` fen refunded) once: the spend, the
    points in proportion (never below zero) and the level, which may go down.

    True when this call applied it, False when it had been applied already.
    """
    if amount < 0:
        raise ValueError(f"a refunded amount cannot be negative: {amount}")
    thresholds = list(settings.member_level_thresholds)
    row = await _run(_REVOKE, [member_id, order_id, refund_ref(refund_no), amount, thresholds])
    return _applied(row, member_id)


@dataclass(frozen=True)
class Adjusted:
    entry: PointsEntry
    points: int  # the member's balance now
    applied: bool  # False: this ref had been applied already (a retried request)


async def adjust_points(
    actor: Actor, member_id: int, delta: int, reason: str, ref: str
) -> Adjusted:
    """A staff adjustment, once per `ref` (the client's idempotency key); audited.

    The balance never goes below zero (`insufficient_points`); the same ref with another
    delta or reason is `idempotency_key_reused`.
    """
    if delta == 0:
        raise ValueError("an adjustment changes the balance")
    async with in_transaction():
        row = await _run(_ADJUST, [member_id, ref, delta, reason])
        if row["before"] is None:
            raise NotFound(f"no member has the id {member_id}")
        if row["entry_id"] is not None:
            await record_by(
                actor,
                "member.points.adjust",
                "member",
                member_id,
                delta=delta,
                reason=reason,
                ref=ref,
                points=[row["before"], row["after"]],
            )
            entry = await PointsEntry.get(id=row["entry_id"])
            return Adjusted(entry, int(row["after"]), applied=True)
    entry_or_none = await PointsEntry.get_or_none(
        member_id=member_id, kind=PointsKind.ADJUST, ref=ref
    )
    if entry_or_none is None:
        raise InsufficientPoints(
            f"the member has {row['before']} points: cannot take {-delta}",
            points=row["before"],
        )
    if (entry_or_none.points, entry_or_none.note) != (delta, reason):
        raise IdempotencyKeyReused(ref=ref)
    return Adjusted(entry_or_none, int(row["before"]), applied=False)


async def list_entries(member_id: int, paging: Paging) -> Page[PointsEntry]:
    """A member's points ledger, newest first."""
    if not await Member.exists(id=member_id):
        raise NotFound(f"no member has the id {member_id}")
    entries, total = await paged(PointsEntry.filter(member_id=member_id), paging, "-id")
    return Page(entries, total, paging.page, paging.size)
