"""The outbox relay: events committed with actor state, published once to `deer:events`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from redis.asyncio import Redis
from tortoise.transactions import in_transaction

from actors.store import CONNECTION
from config.settings import Settings
from deer.cache import key

log = logging.getLogger(__name__)

BATCH: Final = 200
IDLE_WAIT: Final = 0.2  # seconds between polls of an empty outbox
MARKER_TTL: Final = 24 * 3600  # seconds a "published" marker outlives its row (relay restarts)
EVENTS_KEPT: Final = 1_000_000
RELAY_LOCK: Final = 0x6465_6572_0001  # one relay at a time across processes (advisory lock)

# Publish an event unless its marker says it already was: atomic, so a relay killed between
# publishing and deleting the row publishes nothing twice after its restart.
PUBLISH_ONCE: Final = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*',
                    'outbox_id', ARGV[3], 'kind', ARGV[4], 'key', ARGV[5], 'event', ARGV[6])
end
return false
"""


def events_key(settings: Settings) -> str:
    return key(settings, "events")


class OutboxRelay:
    """Moves `actor_outbox` rows to the events stream, in id order, then deletes them."""

    def __init__(self, settings: Settings, redis: Redis) -> None:
        self.settings = settings
        self.redis = redis
        self.published = 0

    async def run(self) -> None:
        while True:
            try:
                moved = await self.relay_once()
            except Exception:
                log.exception("outbox relay: batch failed, retrying")
                moved = 0
            if moved == 0:
                await asyncio.sleep(IDLE_WAIT)

    async def relay_once(self) -> int:
        """One batch; the number of rows handled (0: empty, or another relay is at work)."""
        async with in_transaction(CONNECTION) as connection:
            locked = await connection.execute_query_dict(
                "SELECT pg_try_advisory_xact_lock($1) AS locked", [RELAY_LOCK]
            )
            if not locked[0]["locked"]:
                return 0
            rows = await connection.execute_query_dict(
                "SELECT id, kind, key, event::text AS event FROM actor_outbox ORDER BY id LIMIT $1",
                [BATCH],
            )
            for row in rows:
                await self._publish(row)
            if rows:
                await connection.execute_query(
                    "DELETE FROM actor_outbox WHERE id = ANY($1::bigint[])",
                    [[row["id"] for row in rows]],
                )
        return len(rows)

    async def _publish(self, row: dict[str, Any]) -> None:
        marker = key(self.settings, "outbox", "published", row["id"])
        added = await self.redis.eval(
            PUBLISH_ONCE,
            2,
            marker,
            events_key(self.settings),
            MARKER_TTL,
            EVENTS_KEPT,
            row["id"],
            row["kind"],
            row["key"],
            row["event"],
        )
        if added is not None:
            self.published += 1
