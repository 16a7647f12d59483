"""Prometheus metrics of one app: requests by route and status, latency, in flight, DB pool.

The hot path only bumps plain Python numbers (no locks, no label look-ups); a collector turns
them into Prometheus families when `/metrics` is scraped.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

import asyncpg
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PoolCollector(Collector):
    """Reads the asyncpg pool at scrape time, so nothing is updated on the hot path."""

    def __init__(self, pool: Callable[[], asyncpg.Pool | None]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        pool = self._pool()
        size = GaugeMetricFamily("deer_db_pool_connections", "Open database connections")
        idle = GaugeMetricFamily("deer_db_pool_idle", "Idle database connections")
        limit = GaugeMetricFamily("deer_db_pool_max", "Largest allowed pool size")
        size.add_metric([], pool.get_size() if pool else 0)
        idle.add_metric([], pool.get_idle_size() if pool else 0)
        limit.add_metric([], pool.get_max_size() if pool else 0)
        yield from (size, idle, limit)


class _Latency:
    __slots__ = ("buckets", "count", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one is +Inf
        self.count = 0
        self.total = 0.0


class HttpCollector(Collector):
    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.latency: dict[tuple[str, str], _Latency] = {}
        self.in_flight = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        labels = (method, route, str(status))
        self.requests[labels] = self.requests.get(labels, 0) + 1
        latency = self.latency.get((method, route))
        if latency is None:
            latency = self.latency[(method, route)] = _Latency()
        latency.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.count += 1
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "deer_http_requests", "HTTP requests handled", labels=["method", "route", "status"]
        )
        for labels, count in sorted(self.requests.items()):
            requests.add_metric(list(labels), count)
        latency = HistogramMetricFamily(
            "deer_http_request_duration_seconds",
            "Time to handle an HTTP request",
            labels=["method", "route"],
        )
        for (method, route), seen in sorted(self.latency.items()):
            cumulative, running = [], 0
            for bound, count in zip(
                (*map(str, LATENCY_BUCKETS), "+Inf"), seen.buckets, strict=True
            ):
                running += count
                cumulative.append((bound, float(running)))
            latency.add_metric([method, route], cumulative, seen.total)
        in_flight = GaugeMetricFamily("deer_http_requests_in_flight", "HTTP requests being handled")
        in_flight.add_metric([], self.in_flight)
        yield from (requests, latency, in_flight)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.http = HttpCollector()
        self.registry.register(self.http)

    def watch_pool(self, pool: Callable[[], asyncpg.Pool | None]) -> None:
        self.registry.register(PoolCollector(pool))

    def render(self) -> bytes:
        return generate_latest(self.registry)
