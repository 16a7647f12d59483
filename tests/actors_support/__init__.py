"""Helpers shared by the actor runtime's tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import orjson
import pytest
from redis.asyncio import Redis

from config.settings import Settings
from deer import cache, db
from deer.db import asyncpg_url

# Short leases so takeovers happen within a test; renewal well inside the TTL.
FAST: dict[str, Any] = {
    "actor_partitions": 4,
    "actor_lease_ttl": 1.0,
    "actor_lease_renew": 0.3,
    "actor_max_attempts": 2,
}


@pytest.fixture
async def fast(settings: Settings) -> AsyncIterator[Settings]:
    """This test's settings with short leases (`FAST`), the database open. A module that needs
    other settings defines its own `fast`; import this one (`fast as fast`) otherwise."""
    fast_settings = settings.with_values(**FAST)
    async with db.database(fast_settings):
        yield fast_settings


@pytest.fixture
async def redis(fast: Settings) -> AsyncIterator[Redis]:
    """A Redis client on `fast` (import it as `redis as redis`)."""
    async with cache.redis_client(fast) as client:
        yield client


async def eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Wait until `check()` holds; fail naming `what` after `within` seconds (a deadline)."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {within} s: {what}")
        await asyncio.sleep(0.05)


async def actor_rows(settings: Settings, kind: str) -> dict[str, dict[str, Any]]:
    """Every actor of `kind` as committed: key -> {state, last_message_id, version}."""
    assert settings.database_url is not None
    connection = await asyncpg.connect(asyncpg_url(settings.database_url.get_secret_value()))
    try:
        rows = await connection.fetch(
            "SELECT key, state::text AS state, last_message_id, version FROM actor_state"
            " WHERE kind = $1",
            kind,
        )
    finally:
        await connection.close()
    return {
        row["key"]: {
            "state": orjson.loads(row["state"]),
            "last_message_id": row["last_message_id"],
            "version": row["version"],
        }
        for row in rows
    }


async def pending_entries(redis: Redis, stream: str) -> int:
    """Entries of a partition stream delivered and not acknowledged, over its consumer groups
    (one per owner; none before the first owner)."""
    if not await redis.exists(stream):
        return 0
    groups = await redis.xinfo_groups(stream)
    return sum(int(group["pending"]) for group in groups)
