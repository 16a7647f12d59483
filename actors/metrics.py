"""Prometheus numbers of an actor runtime, read at scrape time from its hosts' plain counters.

Nothing here runs on the hot path: turns bump plain numbers (`HostStats`), the lease tick
refreshes the stream lag and pending counts and the dead letters waiting, the reminder loop
the due count; `collect` only reads them (no Redis call, no lock).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from actors.runtime import LATENCY_BUCKETS, Runtime


class ActorCollector(Collector):
    """One family per number, labelled by actor kind."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        def gauge(name: str, text: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"deer_actor_{name}", text, labels=["kind"])

        def counter(name: str, text: str) -> CounterMetricFamily:
            return CounterMetricFamily(f"deer_actor_{name}", text, labels=["kind"])

        owned = gauge("partitions_owned", "Partitions this process holds a lease on")
        in_memory = gauge("actors_in_memory", "Actors in memory (not passivated)")
        depth = gauge("mailbox_depth", "Entries read and not yet acknowledged, all mailboxes")
        pending = gauge("stream_pending", "Entries delivered, not acknowledged (owned partitions)")
        lag = gauge("stream_lag", "Entries not yet read by the group (owned partitions)")
        due = gauge("reminders_due", "Reminders past their time, not yet fired (owned partitions)")
        waiting = gauge(
            "dead_letters_waiting", "Dead letters of the kind waiting to be replayed or dropped"
        )
        handled = counter("handled", "Turns committed (dead letters included)")
        redeliveries = counter(
            "redeliveries",
            "Entries read again: after a takeover, or after a read whose reply was lost",
        )
        duplicates = counter("duplicates", "Entries already applied, acknowledged again")
        dead = counter("dead_letters", "Commands sent to the dead-letter stream")
        stale = counter("stale_commits", "Commits refused by the fencing check")
        fired = counter("reminders_fired", "Reminders moved into their partition stream")
        commits = counter("commits", "Commit statements; handled / commits = turns per batch")
        latency = HistogramMetricFamily(
            "deer_actor_handle_duration_seconds",
            "Time of one turn: load, handle, commit, acknowledge",
            labels=["kind"],
        )
        for kind, host in sorted(self.runtime.hosts.items()):
            stats = host.stats
            labels = [kind]
            owned.add_metric(labels, len(host.owned))
            in_memory.add_metric(labels, sum(len(cells) for cells in host.cells.values()))
            depth.add_metric(labels, host.in_flight)
            pending.add_metric(labels, stats.pending)
            lag.add_metric(labels, stats.lag)
            due.add_metric(labels, stats.reminders_due)
            waiting.add_metric(labels, stats.dead_letters_waiting)
            handled.add_metric(labels, stats.handled)
            redeliveries.add_metric(labels, stats.read_again)
            duplicates.add_metric(labels, stats.redelivered)
            dead.add_metric(labels, stats.dead_letters)
            stale.add_metric(labels, stats.stale_commits)
            fired.add_metric(labels, stats.reminders_fired)
            commits.add_metric(labels, stats.commits)
            cumulative, running = [], 0
            bounds = (*map(str, LATENCY_BUCKETS), "+Inf")
            for bound, count in zip(bounds, list(stats.latency_buckets), strict=True):
                running += count
                cumulative.append((bound, float(running)))
            latency.add_metric(labels, cumulative, stats.latency_sum)
        yield from (owned, in_memory, depth, pending, lag, due, waiting)
        yield from (handled, redeliveries, duplicates, dead, stale, fired, commits, latency)


def register(metrics_registry: CollectorRegistry, runtime: Runtime) -> ActorCollector:
    """Export `runtime`'s numbers on `metrics_registry` (the app's: `app[METRICS].registry`)."""
    collector = ActorCollector(runtime)
    metrics_registry.register(collector)
    return collector
