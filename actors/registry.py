"""The entity actors this deployment hosts: the cart, order and opportunity actors join this
list in their issues. `serve` and `worker` host the same kinds."""

from __future__ import annotations

from actors.base import Actor
from deer.shop.cart import Cart


def entity_actors() -> list[Actor]:
    return [Cart()]
