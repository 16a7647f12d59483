"""Fixed-window counters in Redis, taken before the work they limit: under any concurrency
no more than `limit` attempts per window get through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from deer.errors import RateLimited

# Count one attempt; answer the count and the seconds left in the window.
_TAKE: Final = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]) ttl = tonumber(ARGV[1]) end
return {count, ttl}
"""


@dataclass(frozen=True)
class Limit:
    key: str
    limit: int
    window: int  # seconds
    message: str


class Limiter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._take = redis.register_script(_TAKE)

    async def take(self, *limits: Limit) -> None:
        """Count an attempt against every limit; refuse it if any is over."""
        for limit in limits:
            count, ttl = await self._take(keys=[limit.key], args=[limit.window])
            if int(count) > limit.limit:
                raise RateLimited(limit.message, retry_after=max(1, int(ttl)))

    async def give_back(self, *limits: Limit) -> None:
        """Forget this attempt: it succeeded, and only failures count."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for limit in limits:
                pipe.decr(limit.key)
            await pipe.execute()

    async def clear(self, limit: Limit) -> None:
        await self.redis.delete(limit.key)
