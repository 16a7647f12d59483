"""Real worker processes (`python -m actors.testing.worker`) for the multi-process tests."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
READY_WITHIN = 30.0  # seconds for a worker to start (a loaded CI machine)


class Worker:
    """One worker process; its id is what its leases carry."""

    def __init__(self, process: asyncio.subprocess.Process, process_id: str) -> None:
        self.process = process
        self.process_id = process_id


def worker_env(settings: Settings) -> dict[str, str]:
    """The worker's environment: this test's servers, namespace and actor settings."""
    assert settings.database_url is not None and settings.redis_url is not None
    env = {name: value for name, value in os.environ.items() if not name.startswith("DEER_")}
    env.update(
        DEER_DATABASE_URL=settings.database_url.get_secret_value(),
        DEER_REDIS_URL=settings.redis_url.get_secret_value(),
        DEER_REDIS_NAMESPACE=settings.redis_namespace,
        DEER_ACTOR_PARTITIONS=str(settings.actor_partitions),
        DEER_ACTOR_LEASE_TTL=str(settings.actor_lease_ttl),
        DEER_ACTOR_LEASE_RENEW=str(settings.actor_lease_renew),
        DEER_ACTOR_MAX_ATTEMPTS=str(settings.actor_max_attempts),
        DEER_LOG_LEVEL="WARNING",
        DEER_DB_POOL_MAX="4",
        DEER_SHUTDOWN_TIMEOUT="5",
    )
    return env


@pytest.fixture
async def workers() -> AsyncIterator[list[Worker]]:
    """Started workers, all stopped (SIGKILL at the latest) when the test ends."""
    started: list[Worker] = []
    yield started
    for worker in started:
        if worker.process.returncode is None:
            worker.process.kill()
        await worker.process.wait()


async def spawn(settings: Settings, tmp_path: Path, workers: list[Worker]) -> Worker:
    """Start a worker with `settings` and wait for its `ready <process id>` line."""
    log = (tmp_path / f"worker-{len(workers)}.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "actors.testing.worker",
        cwd=ROOT,
        env=worker_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    log.close()  # the child has its own copy
    worker = Worker(process, "")
    workers.append(worker)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), READY_WITHIN)
    assert line.startswith(b"ready "), line
    worker.process_id = line.split()[1].decode()
    return worker
