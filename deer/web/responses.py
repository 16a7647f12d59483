"""JSON responses (orjson) and the one error shape `{"error": {code, message, details}}`."""

from __future__ import annotations

from typing import Any, Final

import orjson
from aiohttp import web
from pydantic import BaseModel

from deer.errors import DeerError, Kind

JSON: Final = "application/json"

STATUS_OF_KIND: Final[dict[Kind, int]] = {
    "validation_error": 422,
    "not_found": 404,
    "unauthorized": 401,
    "forbidden": 403,
    "conflict": 409,
    "rate_limited": 429,
    "unavailable": 503,
    "timeout": 504,
    "internal": 500,
}


class HttpError(Exception):
    """A protocol-level refusal (malformed JSON, wrong content type): already an HTTP status."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


def _default(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    body = value.model_dump_json().encode() if isinstance(value, BaseModel) else dumps(value)
    return web.Response(body=body, status=status, content_type=JSON, headers=headers)


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    payload = {"error": {"code": code, "message": message, "details": details or {}}}
    return web.Response(body=dumps(payload), status=status, content_type=JSON, headers=headers)


def domain_error_response(error: DeerError) -> web.Response:
    headers = None
    retry_after = error.details.get("retry_after")
    if error.kind == "rate_limited" and retry_after is not None:
        headers = {"Retry-After": str(retry_after)}
    return error_response(
        STATUS_OF_KIND[error.kind], error.code, error.message, error.details, headers
    )
