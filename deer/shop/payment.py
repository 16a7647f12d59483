"""What a buyer pays for an order, and with which WeChat account."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Final

from actors.base import JsonObject
from deer.accounts.models import Member
from deer.shop.errors import IllegalTransition, PaymentExpired, WechatNotBound
from deer.shop.order_actor import Status

DESCRIPTION_MAX: Final = 100  # WeChat Pay shows at most 127 characters in the buyer's bill


@dataclass(frozen=True, slots=True)
class Due:
    amount: int  # fen
    description: str
    expires_at: dt.datetime


def due(order: JsonObject, payment_timeout: float) -> Due:
    """What is due on an unpaid order, until when; refused for any other order."""
    if order["status"] != Status.PENDING_PAYMENT:
        raise IllegalTransition(
            f"an order that is {order['status']} cannot pay (only pending_payment)",
            action="pay",
            status=order["status"],
        )
    expires = order["created_ms"] / 1000 + payment_timeout
    if expires <= time.time():
        raise PaymentExpired()
    lines = order["lines"]
    name = str(lines[0]["name"])[:DESCRIPTION_MAX]
    items = sum(int(line["quantity"]) for line in lines)
    return Due(
        amount=order["payable"] - order["paid"],
        description=name if items == 1 else f"{name} 等{items}件",
        expires_at=dt.datetime.fromtimestamp(expires, dt.UTC),
    )


async def openid_of(member_id: int) -> str:
    """The member's WeChat openid, which WeChat Pay's JSAPI needs."""
    found = await Member.filter(id=member_id).values_list("wechat_openid", flat=True)
    if not found or not found[0]:
        raise WechatNotBound()
    return str(found[0])
