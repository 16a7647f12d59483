"""Prometheus metrics of one app: requests by route and status, latency, in flight, DB pool."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PoolCollector(Collector):
    """Reads the asyncpg pool at scrape time, so nothing is updated on the hot path."""

    def __init__(self, pool: Callable[[], asyncpg.Pool | None]) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._pool()
        size = GaugeMetricFamily("deer_db_pool_connections", "Open database connections")
        idle = GaugeMetricFamily("deer_db_pool_idle", "Idle database connections")
        limit = GaugeMetricFamily("deer_db_pool_max", "Largest allowed pool size")
        size.add_metric([], pool.get_size() if pool else 0)
        idle.add_metric([], pool.get_idle_size() if pool else 0)
        limit.add_metric([], pool.get_max_size() if pool else 0)
        yield from (size, idle, limit)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "deer_http_requests",
            "HTTP requests handled",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "deer_http_request_duration_seconds",
            "Time to handle an HTTP request",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "deer_http_requests_in_flight", "HTTP requests being handled", registry=self.registry
        )

    def watch_pool(self, pool: Callable[[], asyncpg.Pool | None]) -> None:
        self.registry.register(PoolCollector(pool))

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
