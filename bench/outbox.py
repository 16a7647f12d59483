"""The outbox relay's throughput: events moved from `actor_outbox` to `deer:events` a second.

Each round inserts `--events` rows into `actor_outbox` in one statement (as if that many turns
had committed an event each), then runs `OutboxRelay.relay_once()` until the outbox is empty,
and reports the rate, the events published (each once) and the Redis keys the relay left
besides the events stream (none: markers are unlinked once their rows are deleted).

    .venv/bin/python -m bench.outbox                   # 3 rounds of 20,000 events, seconds
    .venv/bin/python -m bench.outbox --events 100000 --rounds 5

It creates, migrates and drops the database `--database` on `--postgres`, and uses Redis
database 15 (`--redis-url`) under a namespace of its own, deleted at the end.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time
import uuid
from typing import Final

from actors.outbox import OutboxRelay, events_key
from bench.actors import (
    DEFAULT_REDIS_URL,
    POSTGRES_SERVER,
    admin,
    bench_settings,
)
from bench.http import cpu_count, cpu_model, idle_driver
from config.settings import Settings
from deer import db
from deer.cache import create_redis
from run import run_async

BENCH_DATABASE: Final = "deer_outbox_bench"

FILL: Final = """
INSERT INTO actor_outbox (kind, key, message_id, event, created_at)
SELECT 'counter', 'k' || (n % 1000), n || '-0',
       jsonb_build_object('type', 'counter.added', 'key', 'k' || (n % 1000), 'n', n), now()
FROM generate_series(1, $1) AS n
"""


async def round_(settings: Settings, events: int) -> tuple[float, int, int]:
    """One round: (seconds to relay them all, events published, Redis keys left)."""
    from tortoise import connections

    redis = create_redis(settings)
    try:
        await connections.get("default").execute_query(FILL, [events])
        relay = OutboxRelay(settings, redis)
        began = time.perf_counter()
        while await relay.relay_once():
            pass
        seconds = time.perf_counter() - began
        stream = events_key(settings)
        left = [
            name
            async for name in redis.scan_iter(match=f"{settings.redis_namespace}:*", count=1000)
            if name.decode() != stream
        ]
        await redis.delete(stream)
        return seconds, relay.published, len(left)
    finally:
        await redis.aclose(close_connection_pool=True)


async def run(args: argparse.Namespace) -> None:
    namespace = f"bench-outbox-{uuid.uuid4().hex[:8]}"
    settings = bench_settings(args.redis_url, namespace, args.database, args.postgres)
    await admin(args.postgres, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    await admin(args.postgres, f'CREATE DATABASE "{args.database}"')
    rows: list[tuple[float, int, int]] = []
    try:
        await db.migrate(settings)
        async with db.database(settings):
            for _ in range(args.rounds):
                rows.append(await round_(settings, args.events))
    finally:
        redis = create_redis(settings)
        try:
            found = [name async for name in redis.scan_iter(match=f"{namespace}:*")]
            if found:
                await redis.unlink(*found)
        finally:
            await redis.aclose(close_connection_pool=True)
        await admin(args.postgres, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"\n{now}; {cpu_count()} CPUs ({cpu_model()}), cpuidle {idle_driver()};"
        f" Python {platform.python_version()}\n"
    )
    print("| round | events | seconds | events/s | published | Redis keys left |")
    print("|---|---|---|---|---|---|")
    for number, (seconds, published, left) in enumerate(rows, 1):
        rate = args.events / seconds
        print(
            f"| {number} | {args.events:,} | {seconds:.2f} | {rate:,.0f} | {published:,} | {left} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=20_000, help="rows per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--postgres", default=POSTGRES_SERVER, help="the PostgreSQL server")
    parser.add_argument("--database", default=BENCH_DATABASE, help="made and dropped by the run")
    run_async(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
