"""A counter actor that records which commands it applied, to count effects exactly."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from actors.base import Actor, JsonObject, Outcome


class Poison(Exception):
    """Raised for a command marked `fail`: it should end in the dead-letter stream."""


class Counter(Actor):
    """State: `count` and the `applied` command ids in order. Reply: the new count."""

    kind: ClassVar[str] = "counter"

    def initial_state(self, key: str) -> JsonObject:
        return {"count": 0, "applied": []}

    async def handle(self, key: str, state: JsonObject, command: JsonObject) -> Outcome:
        if command.get("sleep"):
            await asyncio.sleep(float(command["sleep"]))
        if command.get("fail"):
            raise Poison(f"poison command {command.get('id')}")
        count = int(state["count"]) + 1
        applied = [*state["applied"], command["id"]]
        return Outcome(
            state={"count": count, "applied": applied},
            reply=count,
            events=[{"type": "counter.added", "key": key, "count": count}],
        )
