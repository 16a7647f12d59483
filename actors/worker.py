"""A process that hosts actors without HTTP (`run.py worker` will call `run_worker`)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence

from actors.base import Actor
from actors.runtime import Runtime, actor_runtime
from config.settings import Settings
from deer import cache, db
from deer.heap import settle_heap


async def run_worker(
    settings: Settings,
    actors: Sequence[Actor],
    on_ready: Callable[[Runtime], None] | None = None,
) -> None:
    """Host `actors` until SIGINT or SIGTERM, then drain and release the leases (a process of
    its own: the heap is frozen once started, `deer.heap`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with (
            db.database(settings),
            cache.redis_client(settings) as redis,
            actor_runtime(settings, redis, actors) as runtime,
        ):
            settle_heap()
            if on_ready is not None:
                on_ready(runtime)
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
