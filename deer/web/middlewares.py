"""The middleware stack, outermost first: request id, access log and metrics, compression,
CORS, error mapping. Each is small and does one thing."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from deer import keys
from deer.errors import DeerError
from deer.logs import request_id_var
from deer.web.responses import HttpError, domain_error_response, error_response

log = logging.getLogger("deer.http")
access_log = logging.getLogger("deer.access")

REQUEST_ID_HEADER: Final = "X-Request-ID"
REQUEST_ID_KEY: Final = web.RequestKey("request_id", str)
_GOOD_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
COMPRESS_MIN_BYTES: Final = 1024
UNMATCHED_ROUTE: Final = "<unmatched>"

# Codes for refusals aiohttp raises itself (routing, body size) in the one error shape.
HTTP_CODES: Final = {
    400: ("bad_request", "the request is malformed"),
    401: ("unauthorized", "sign in first"),
    403: ("forbidden", "you may not do this"),
    404: ("not_found", "no such resource"),
    405: ("method_not_allowed", "this resource does not accept that method"),
    409: ("conflict", "this conflicts with the current state"),
    413: ("payload_too_large", "the request body is too large"),
    415: ("unsupported_media_type", "unsupported content type"),
    429: ("rate_limited", "too many requests, try again later"),
    503: ("unavailable", "the service is unavailable, try again shortly"),
}


def route_name(request: web.Request) -> str:
    """The route template (`/api/orders/{id}`), never the raw path: bounded metric labels."""
    info = request.match_info
    if info.http_exception is not None:
        return UNMATCHED_ROUTE
    resource = info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = incoming if _GOOD_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    request[REQUEST_ID_KEY] = request_id
    token = request_id_var.set(request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers[REQUEST_ID_HEADER] = request_id
        raise
    finally:
        request_id_var.reset(token)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    metrics = request.app[keys.METRICS]
    started = time.perf_counter()
    status = 500
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        metrics.in_flight.dec()
        route = route_name(request)
        metrics.observe(request.method, route, status, elapsed)
        access_log.info(
            "%s %s %d %.1fms",
            request.method,
            request.path,
            status,
            elapsed * 1000,
            extra={"status": status, "route": route, "ms": round(elapsed * 1000, 2)},
        )


@web.middleware
async def compression_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """gzip or deflate bodies over 1 KiB when the client accepts it (aiohttp picks which)."""
    response = await handler(request)
    if (
        isinstance(response, web.Response)
        and isinstance(response.body, bytes)
        and len(response.body) > COMPRESS_MIN_BYTES
        and hdrs.CONTENT_ENCODING not in response.headers
        and any(enc in request.headers.get(hdrs.ACCEPT_ENCODING, "") for enc in ("gzip", "deflate"))
    ):
        response.enable_compression()
    return response


def cors_middleware(origins: tuple[str, ...]) -> Middleware:
    allowed = frozenset(origins)
    allow_any = "*" in allowed

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not (allow_any or origin in allowed):
            return await handler(request)
        headers = {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true",
            hdrs.VARY: "Origin",
        }
        if (
            request.method == hdrs.METH_OPTIONS
            and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
        ):
            headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
            headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = request.headers.get(
                hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "Authorization, Content-Type"
            )
            headers[hdrs.ACCESS_CONTROL_MAX_AGE] = "600"
            return web.Response(status=204, headers=headers)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers.update(headers)
            raise
        headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = REQUEST_ID_HEADER
        response.headers.update(headers)
        return response

    return cors


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal leaves in one JSON shape; unknown failures become a generic 500."""
    try:
        return await handler(request)
    except DeerError as exc:
        return domain_error_response(exc)
    except HttpError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(exc, request)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; quote the request id to support")


def _from_http_exception(exc: web.HTTPException, request: web.Request) -> web.Response:
    fallback = ("internal" if exc.status >= 500 else "bad_request", exc.reason)
    code, message = HTTP_CODES.get(exc.status, fallback)
    details: dict[str, object] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        details["allowed"] = sorted(exc.allowed_methods)
        headers[hdrs.ALLOW] = ",".join(sorted(exc.allowed_methods))
        message = f"{exc.method} is not allowed here; use {', '.join(sorted(exc.allowed_methods))}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[keys.SETTINGS].max_body_size
        details["limit_bytes"] = limit
        message = f"the request body is larger than the limit of {limit} bytes"
    elif exc.status == 404:
        message = "no such resource"
    return error_response(exc.status, code, message, details, headers or None)
