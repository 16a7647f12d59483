"""The garbage collector of a long-running process, tuned once it has started.

Everything made while starting (modules, settings, pools, routes, policies) lives as long as
the process, yet each full collection would walk it again: a full collection of a started
actor worker took 37 ms here, a pause in the middle of turns and requests. `gc.freeze()` moves
what survived start-up out of the collector's sight; what is made afterwards is collected as
usual (young collections measured 0.2-1.4 ms under load). Only for a process of its own
(`run.py serve`, `run_worker`): a test process that builds many apps would keep their garbage
cycles for good.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect the start-up garbage once, then freeze what survived (call when started)."""
    gc.collect()
    gc.freeze()
