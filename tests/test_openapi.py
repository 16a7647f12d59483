"""The OpenAPI 3.1 document covers every route and validates; Swagger UI is served locally."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from deer.web.api import endpoint_of


async def test_document_is_valid_openapi_31(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_route_is_declared_and_documented(
    client: TestClient[Any, Any], app: web.Application
) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    for route in app.router.routes():
        if route.resource is None or route.resource.canonical.startswith("/api/docs/static"):
            continue  # Swagger UI's own assets
        if route.method == "HEAD":
            continue  # aiohttp adds HEAD beside each GET
        endpoint = endpoint_of(route.handler)
        assert endpoint is not None, f"{route.method} {route.resource.canonical} is not declared"
        if not endpoint.documented:
            assert endpoint.path.startswith("/api/docs")  # only the docs page's own plumbing
            continue
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        assert operation["summary"]
        assert operation["responses"]


async def test_operations_list_schemas_and_errors(client: TestClient[Any, Any]) -> None:
    document = await (await client.get("/api/openapi.json")).json()
    readyz = document["paths"]["/readyz"]["get"]
    assert readyz["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Readiness"
    }
    assert "503" in readyz["responses"]
    assert readyz["security"] == []
    schemas = document["components"]["schemas"]
    assert {"Readiness", "Check", "Meta", "Health", "Error"} <= set(schemas)
    assert schemas["Error"]["properties"]["error"]["required"] == ["code", "message", "details"]


async def test_swagger_ui_is_served_without_a_cdn(client: TestClient[Any, Any]) -> None:
    page = await client.get("/api/docs")
    assert page.status == 200
    html = await page.text()
    assert "http://" not in html and "https://" not in html
    for asset in (
        "/api/docs/static/swagger-ui-bundle.js",
        "/api/docs/static/swagger-ui.css",
        "/api/docs/static/deer-docs.js",
    ):
        assert asset in html
        response = await client.get(asset)
        assert response.status == 200, asset
        assert len(await response.read()) > 50
    init = await (await client.get("/api/docs/static/deer-docs.js")).text()
    assert '"/api/openapi.json"' in init


async def test_meta_is_a_json_endpoint(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/meta")
    assert response.status == 200
    body = await response.json()
    assert body["name"] == "deer"
    assert body["time_zone"] == "Asia/Shanghai"
    assert body["server_time"].endswith("Z")
