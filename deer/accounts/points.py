"""Placeholder until the members branch lands (it replaces this file)."""

from __future__ import annotations

from config.settings import Settings


async def record_paid_order(settings: Settings, member_id: int, order_id: int, amount: int) -> bool:
    return False


async def record_refund(
    settings: Settings, member_id: int, order_id: int, refund_no: str, amount: int
) -> bool:
    return False
