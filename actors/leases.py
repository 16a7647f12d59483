"""Partition leases in Redis: acquire with a fencing token, renew, release; live members."""

from __future__ import annotations

import time
from typing import Final

from redis.asyncio import Redis

from config.settings import Settings
from deer.cache import key

# Take the lease only if it is free, and hand out a token only then (INCR inside the script).
ACQUIRE: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""
RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(settings: Settings, kind: str, partition: int) -> str:
    return key(settings, "actors", kind, "lease", partition)


def lease_value(owner: str, token: int) -> str:
    return f"{owner}:{token}"


class Leases:
    """The leases of one process on the partitions of one kind."""

    def __init__(self, settings: Settings, redis: Redis, kind: str, owner: str) -> None:
        self.settings = settings
        self.redis = redis
        self.kind = kind
        self.owner = owner
        self.ttl_ms = int(settings.actor_lease_ttl * 1000)
        self.members = key(settings, "actors", kind, "members")

    def _key(self, partition: int) -> str:
        return lease_key(self.settings, self.kind, partition)

    async def acquire(self, partition: int) -> int | None:
        """The new fencing token if the partition was free and is now ours, else None."""
        fence = key(self.settings, "actors", self.kind, "fence", partition)
        token = await self.redis.eval(
            ACQUIRE, 2, self._key(partition), fence, self.owner, self.ttl_ms
        )
        return int(token) or None

    async def renew(self, partition: int, token: int) -> bool:
        renewed = await self.redis.eval(
            RENEW, 1, self._key(partition), lease_value(self.owner, token), self.ttl_ms
        )
        return bool(renewed)

    async def release(self, partition: int, token: int) -> bool:
        released = await self.redis.eval(
            RELEASE, 1, self._key(partition), lease_value(self.owner, token)
        )
        return bool(released)

    async def heartbeat(self) -> int:
        """Say this process is alive for one more lease period; the number of live members."""
        now_ms = int(time.time() * 1000)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self.members, {self.owner: now_ms + self.ttl_ms})
            pipe.zremrangebyscore(self.members, "-inf", now_ms)
            pipe.zcard(self.members)
            *_, live = await pipe.execute()
        return max(1, int(live))

    async def leave(self) -> None:
        await self.redis.zrem(self.members, self.owner)
