"""The entity actors this deployment hosts: `serve` and `worker` host the same kinds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from actors.base import Actor
from config.settings import Settings

if TYPE_CHECKING:
    from deer.shop.order_actor import RefundGateway


def entity_actors(settings: Settings, refunds: RefundGateway | None = None) -> list[Actor]:
    """The cart and order actors; `refunds` submits the refunds orders decide on."""
    from deer.shop.cart import Cart
    from deer.shop.order_actor import OrderActor

    return [Cart(), OrderActor(settings, refunds)]
