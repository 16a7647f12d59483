"""Liveness, readiness, metrics and meta endpoints against real PostgreSQL and Redis."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient


async def test_healthz(client: TestClient[Any, Any]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_reports_both_backends(client: TestClient[Any, Any]) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {
        "status": "ready",
        "checks": {"postgres": {"ok": True, "error": None}, "redis": {"ok": True, "error": None}},
    }
