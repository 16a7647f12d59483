"""Request ids, compression, CORS, metrics and readiness failures through the real stack."""

from __future__ import annotations

import gzip
import re
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr

from config.settings import Settings
from deer.app import create_app
from deer.web.api import Api

probe = Api(tags=["probe"], public=True)


@probe.get("/probe/big", summary="a body over 1 KiB")
async def big(request: web.Request) -> dict[str, str]:
    return {"text": "蓝牙耳机" * 200}


@probe.get("/probe/small", summary="a body under 1 KiB")
async def small(request: web.Request) -> dict[str, str]:
    return {"text": "ok"}


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    app = create_app(settings.with_values(cors_origins=("https://admin.example.cn",)))
    probe.register(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


async def test_request_id_is_echoed(api: TestClient[Any, Any]) -> None:
    response = await api.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"


async def test_request_id_is_generated_when_missing_or_unsafe(api: TestClient[Any, Any]) -> None:
    first = (await api.get("/healthz")).headers["X-Request-ID"]
    second = (await api.get("/healthz")).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{22}", first)
    assert first != second
    assert first[:12] == second[:12]  # one random prefix per process, then a counter
    unsafe = await api.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{22}", unsafe.headers["X-Request-ID"])


async def test_request_id_on_error_responses(api: TestClient[Any, Any]) -> None:
    response = await api.get("/nowhere", headers={"X-Request-ID": "r-404"})
    assert response.status == 404
    assert response.headers["X-Request-ID"] == "r-404"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_large_bodies_are_compressed(api: TestClient[Any, Any], encoding: str) -> None:
    response = await api.get(
        "/probe/big", headers={"Accept-Encoding": encoding}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == encoding
    raw = await response.read()
    assert len(raw) < 1024
    if encoding == "gzip":
        assert gzip.decompress(raw).decode() == '{"text":"' + "蓝牙耳机" * 200 + '"}'


async def test_small_bodies_and_unwilling_clients_are_not_compressed(
    api: TestClient[Any, Any],
) -> None:
    small = await api.get("/probe/small", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers
    plain = await api.get(
        "/probe/big", headers={"Accept-Encoding": "identity"}, auto_decompress=False
    )
    assert "Content-Encoding" not in plain.headers
    assert len(await plain.read()) > 1024


async def test_cors_allows_configured_origin(api: TestClient[Any, Any]) -> None:
    preflight = await api.options(
        "/probe/small",
        headers={
            "Origin": "https://admin.example.cn",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://admin.example.cn"
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization"
    response = await api.get("/probe/small", headers={"Origin": "https://admin.example.cn"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://admin.example.cn"
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


async def test_cors_ignores_other_origins(api: TestClient[Any, Any]) -> None:
    response = await api.get("/probe/small", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await api.options(
        "/probe/small",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 405
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_metrics_count_requests_by_route_template(api: TestClient[Any, Any]) -> None:
    for _ in range(3):
        await api.get("/healthz")
    await api.get("/nowhere/42")
    await api.get("/readyz")  # the pool opens on the first query
    response = await api.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'deer_http_requests_total{method="GET",route="/healthz",status="200"} 3.0' in text
    assert 'deer_http_requests_total{method="GET",route="<unmatched>",status="404"} 1.0' in text
    assert 'deer_http_request_duration_seconds_count{method="GET",route="/healthz"} 3.0' in text
    assert "deer_http_requests_in_flight 1.0" in text  # the /metrics request itself
    assert "deer_db_pool_max 20.0" in text
    # Open since the first query; the actor runtime hosting the entity actors uses it too.
    opened = re.search(r"^deer_db_pool_connections (\S+)$", text, re.MULTILINE)
    assert opened is not None and 1 <= float(opened.group(1)) <= 20


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_readyz_names_redis_when_it_is_down(aiohttp_client: Any, settings: Settings) -> None:
    app = create_app(
        settings.with_values(redis_url=SecretStr(f"redis://127.0.0.1:{closed_port()}/0"))
    )
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["postgres"] == {"ok": True, "error": None}
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["error"]


async def test_readyz_names_postgres_when_it_is_down(
    aiohttp_client: Any, settings: Settings
) -> None:
    url = f"postgresql://postgres@127.0.0.1:{closed_port()}/deer"
    app = create_app(settings.with_values(database_url=SecretStr(url), db_pool_min=0))
    client: TestClient[Any, Any] = await aiohttp_client(app)
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["checks"]["redis"] == {"ok": True, "error": None}
    assert body["checks"]["postgres"]["ok"] is False


async def test_access_log_line_has_route_status_and_latency(
    api: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="deer.access"):
        await api.get("/probe/small", headers={"X-Request-ID": "log-me"})
    [record] = [r for r in caplog.records if r.name == "deer.access"]
    assert record.getMessage().startswith("GET /probe/small 200 ")
    assert record.status == 200  # type: ignore[attr-defined]
    assert record.route == "/probe/small"  # type: ignore[attr-defined]
    assert record.ms >= 0  # type: ignore[attr-defined]
    assert record.request_id == "log-me"  # type: ignore[attr-defined]


async def test_metrics_include_the_actor_runtime(client: TestClient[Any, Any]) -> None:
    text = await (await client.get("/metrics")).text()
    assert "# TYPE deer_actor_handle_duration_seconds histogram" in text
