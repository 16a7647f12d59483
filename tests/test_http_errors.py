"""The one error shape for every refusal, body limits, validation with field paths."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import BaseModel, Field

from config.settings import Settings
from deer.app import create_app
from deer.errors import Conflict, RateLimited
from deer.web.api import Api

probe = Api(tags=["probe"], public=True)


class Line(BaseModel):
    product_id: int = Field(gt=0)
    quantity: int = Field(ge=1, le=99)


class Order(BaseModel):
    note: str = Field(max_length=20)
    lines: list[Line] = Field(min_length=1)


class Paging(BaseModel):
    page: int = Field(default=1, ge=1)
    size: int = Field(default=20, ge=1, le=100)


received: list[Order] = []


@probe.post("/probe/orders", summary="probe", body=Order, response=Order, status=201)
async def create_order(request: web.Request, body: Order) -> Order:
    received.append(body)
    return body


@probe.get("/probe/items", summary="probe", query=Paging, response=Paging)
async def list_items(request: web.Request, query: Paging) -> Paging:
    return query


@probe.get("/probe/conflict", summary="probe")
async def conflict(request: web.Request) -> None:
    raise Conflict("库存不足", code="out_of_stock", product_id=7)


@probe.get("/probe/limited", summary="probe")
async def limited(request: web.Request) -> None:
    raise RateLimited(retry_after=42)


@probe.get("/probe/crash", summary="probe")
async def crash(request: web.Request) -> None:
    raise RuntimeError("secret internals")


@pytest.fixture
async def api(aiohttp_client: Any, settings: Settings) -> TestClient[Any, Any]:
    received.clear()
    app = create_app(settings.with_values(max_body_size=2048))
    probe.register(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    return client


def assert_error(payload: dict[str, Any], code: str) -> dict[str, Any]:
    assert set(payload) == {"error"}
    error: dict[str, Any] = payload["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["details"], dict)
    return error


async def test_valid_body_is_accepted(api: TestClient[Any, Any]) -> None:
    body = {"note": "加急", "lines": [{"product_id": 1, "quantity": 2}]}
    response = await api.post("/probe/orders", json=body)
    assert response.status == 201
    assert await response.json() == body


async def test_malformed_json(api: TestClient[Any, Any]) -> None:
    response = await api.post(
        "/probe/orders", data=b'{"note": "x", ', headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert_error(await response.json(), "malformed_json")
    assert received == []


async def test_empty_body(api: TestClient[Any, Any]) -> None:
    response = await api.post("/probe/orders", headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert_error(await response.json(), "malformed_json")


async def test_wrong_content_type(api: TestClient[Any, Any]) -> None:
    response = await api.post(
        "/probe/orders", data="note=x", headers={"Content-Type": "text/plain"}
    )
    assert response.status == 415
    error = assert_error(await response.json(), "unsupported_media_type")
    assert "text/plain" in error["message"]
    assert received == []


async def test_invalid_fields_name_path_and_reason(api: TestClient[Any, Any]) -> None:
    body = {"note": "x" * 21, "lines": [{"product_id": 1, "quantity": 2}, {"product_id": 0}]}
    response = await api.post("/probe/orders", json=body)
    assert response.status == 422
    error = assert_error(await response.json(), "validation_error")
    fields = {item["path"]: item["reason"] for item in error["details"]["fields"]}
    assert set(fields) == {"note", "lines.1.product_id", "lines.1.quantity"}
    assert "20 characters" in fields["note"]
    assert "greater than 0" in fields["lines.1.product_id"]
    assert fields["lines.1.quantity"] == "Field required"
    assert received == []


async def test_json_that_is_not_an_object(api: TestClient[Any, Any]) -> None:
    response = await api.post("/probe/orders", json=[1, 2])
    assert response.status == 422
    assert_error(await response.json(), "validation_error")


async def test_query_validation(api: TestClient[Any, Any]) -> None:
    ok = await api.get("/probe/items", params={"page": "3", "size": "50"})
    assert await ok.json() == {"page": 3, "size": 50}
    bad = await api.get("/probe/items", params={"page": "0", "size": "abc"})
    assert bad.status == 422
    error = assert_error(await bad.json(), "validation_error")
    assert {item["path"] for item in error["details"]["fields"]} == {"page", "size"}


async def test_unknown_route(api: TestClient[Any, Any]) -> None:
    response = await api.get("/no/such/thing")
    assert response.status == 404
    assert_error(await response.json(), "not_found")


async def test_unknown_method(api: TestClient[Any, Any]) -> None:
    response = await api.delete("/probe/orders")
    assert response.status == 405
    assert response.headers["Allow"] == "POST"
    error = assert_error(await response.json(), "method_not_allowed")
    assert error["details"] == {"allowed": ["POST"]}


async def test_oversized_body_uses_the_configured_limit(api: TestClient[Any, Any]) -> None:
    body = {"note": "x", "lines": [{"product_id": 1, "quantity": 1}] * 200}
    response = await api.post("/probe/orders", json=body)
    assert response.status == 413
    error = assert_error(await response.json(), "payload_too_large")
    assert error["details"] == {"limit_bytes": 2048}
    assert received == []


async def test_default_body_limit_is_one_mebibyte(settings: Settings) -> None:
    assert settings.max_body_size == 1024 * 1024
    assert create_app(settings)._client_max_size == 1024 * 1024


async def test_domain_error_keeps_its_code_and_details(api: TestClient[Any, Any]) -> None:
    response = await api.get("/probe/conflict")
    assert response.status == 409
    error = assert_error(await response.json(), "out_of_stock")
    assert error == {"code": "out_of_stock", "message": "库存不足", "details": {"product_id": 7}}


async def test_rate_limited_sets_retry_after(api: TestClient[Any, Any]) -> None:
    response = await api.get("/probe/limited")
    assert response.status == 429
    assert response.headers["Retry-After"] == "42"
    assert_error(await response.json(), "rate_limited")


async def test_crash_is_a_generic_500_with_request_id(
    api: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    response = await api.get("/probe/crash", headers={"X-Request-ID": "trace-123"})
    assert response.status == 500
    error = assert_error(await response.json(), "internal")
    assert "secret" not in error["message"]
    assert response.headers["X-Request-ID"] == "trace-123"
    logged = [r for r in caplog.records if r.name == "deer.http"]
    assert logged and logged[0].exc_info is not None
    assert getattr(logged[0], "request_id", None) == "trace-123"
