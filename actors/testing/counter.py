"""A counter actor that records which commands it applied, to count effects exactly."""

from __future__ import annotations

import asyncio
import os
from typing import ClassVar

from actors.base import Actor, JsonObject, Outcome, Reminder
from deer.errors import Conflict

CRASH_EXIT_CODE = 70


class Poison(Exception):
    """Raised for a command marked `fail`: it should end in the dead-letter stream."""


class Counter(Actor):
    """State: `count` and the `applied` command ids in order. Reply: the new count.

    Command fields besides `id`: `sleep` (seconds, before applying), `fail` (raise `Poison`),
    `crash` (end the process at once, `os._exit`), `refuse` (raise a domain error `Conflict`
    with that code: the command is refused, nothing changes), `remind`
    (`{"id", "at", "command"}`: schedule a reminder) and `cancel` (a reminder id to cancel).
    """

    kind: ClassVar[str] = "counter"

    def initial_state(self, key: str) -> JsonObject:
        return {"count": 0, "applied": []}

    async def handle(self, key: str, state: JsonObject, command: JsonObject) -> Outcome:
        if command.get("sleep"):
            await asyncio.sleep(float(command["sleep"]))
        if command.get("fail"):
            raise Poison(f"poison command {command.get('id')}")
        if command.get("refuse"):
            raise Conflict("the counter refuses", code=str(command["refuse"]), at=state["count"])
        if command.get("crash"):
            os._exit(CRASH_EXIT_CODE)
        count = int(state["count"]) + 1
        applied = [*state["applied"], command["id"]]
        remind = command.get("remind")
        return Outcome(
            state={"count": count, "applied": applied},
            reply=count,
            events=[{"type": "counter.added", "key": key, "count": count}],
            reminders=[Reminder(remind["at"], remind["command"], remind["id"])] if remind else (),
            cancel_reminders=[command["cancel"]] if command.get("cancel") else (),
        )
