"""`python -m actors.testing.worker`: host the counter actor, settings from `DEER_*`.

Prints `ready <process id>` once its runtime started (the tests wait for that line).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from actors.runtime import Runtime
from actors.testing.counter import Counter
from actors.worker import run_worker
from config.settings import load_settings


def _ready(runtime: Runtime) -> None:
    print(f"ready {runtime.process_id}", flush=True)


def main() -> int:
    settings = load_settings()
    logging.basicConfig(level=settings.log_level, stream=sys.stderr)
    asyncio.run(run_worker(settings, [Counter()], _ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())
