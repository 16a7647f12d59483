"""The API docs page renders our OpenAPI document in a real headless browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from tests.browser import render


async def test_swagger_ui_renders_the_operations(
    aiohttp_server: Any, app: web.Application, tmp_path: Path
) -> None:
    server = await aiohttp_server(app)
    screenshot = tmp_path / "docs.png"
    dom = await render(f"http://127.0.0.1:{server.port}/api/docs", screenshot)
    assert "deer API" in dom
    assert "OAS 3.1" in dom
    for path in ("/healthz", "/readyz", "/metrics", "/api/meta", "/api/openapi.json"):
        assert f'data-path="{path}"' in dom, path
    assert "Failed to load API definition" not in dom
    assert 'data-path="/api/docs"' not in dom  # the page does not list its own plumbing
    assert screenshot.stat().st_size > 10_000
