"""The outbox relay: events committed with actor state, published once to `deer:events`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import RedisError
from tortoise.transactions import in_transaction

from actors.store import CONNECTION
from config.settings import Settings
from deer.cache import key

log = logging.getLogger(__name__)

BATCH: Final = 200
IDLE_WAIT: Final = 0.2  # seconds between polls of an empty outbox
MARKER_TTL: Final = 24 * 3600  # seconds a "published" marker left behind lives (a relay died)
EVENTS_KEPT: Final = 1_000_000
RELAY_LOCK: Final = 0x6465_6572_0001  # one relay at a time across processes (advisory lock)

# Publish a batch of events, each unless its marker says it already was: one step, so a relay
# killed between publishing and deleting the rows publishes nothing twice after its restart.
# KEYS: the events stream, then the marker of each row. ARGV: the markers' TTL, the events kept,
# then per row its outbox id, kind, key and event. Returns how many were published.
PUBLISH_ONCE: Final = """
local published = 0
for i = 2, #KEYS do
  if redis.call('SET', KEYS[i], '1', 'NX', 'EX', ARGV[1]) then
    local at = 4 * i - 5
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'outbox_id', ARGV[at],
               'kind', ARGV[at + 1], 'key', ARGV[at + 2], 'event', ARGV[at + 3])
    published = published + 1
  end
end
return published
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
            if not rows:
                return 0
            markers = [key(self.settings, "outbox", "published", row["id"]) for row in rows]
            self.published += await self._publish(rows, markers)
            await connection.execute_query(
                "DELETE FROM actor_outbox WHERE id = ANY($1::bigint[])",
                [[row["id"] for row in rows]],
            )
        # The rows are gone: their markers guarded only against a relay dying before that.
        # Left behind (Redis failing now, or this process dying), they expire by themselves.
        try:
            await self.redis.unlink(*markers)
        except (RedisError, OSError) as exc:
            log.warning("outbox relay: markers left to expire: %s", exc)
        return len(rows)

    async def _publish(self, rows: list[dict[str, Any]], markers: list[str]) -> int:
        """Publish the rows' events (one script run); how many were not published before."""
        args: list[Any] = [MARKER_TTL, EVENTS_KEPT]
        for row in rows:
            args += [row["id"], row["kind"], row["key"], row["event"]]
        published = await self.redis.eval(
            PUBLISH_ONCE, 1 + len(markers), events_key(self.settings), *markers, *args
        )
        return int(published)
