"""The entity actors this deployment hosts: `serve` and `worker` host the same kinds."""

from __future__ import annotations

from actors.base import Actor
from config.settings import Settings


def entity_actors(settings: Settings) -> list[Actor]:
    from deer.shop.order_actor import OrderActor

    return [OrderActor(settings)]
