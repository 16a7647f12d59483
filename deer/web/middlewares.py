"""The HTTP edge in one middleware: request id, CORS, error mapping, compression, metrics and
the access log. One layer instead of five: each aiohttp middleware layer costs about 2 µs even
when it does nothing, and this one runs on every request (see docs/PERFORMANCE.md)."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from deer.errors import DeerError
from deer.logs import access_logger, log_access, request_id_var
from deer.web.metrics import HttpCollector
from deer.web.responses import HttpError, domain_error_response, error_response

log = logging.getLogger("deer.http")

REQUEST_ID_HEADER: Final = "X-Request-ID"
REQUEST_ID_KEY: Final = web.RequestKey("request_id", str)
_GOOD_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
COMPRESS_MIN_BYTES: Final = 1024
UNMATCHED_ROUTE: Final = "<unmatched>"
CORS_METHODS: Final = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
CORS_MAX_AGE: Final = "600"

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


class RequestIds:
    """Unique ids without a system call: a random prefix per process and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def take(self, incoming: str | None) -> str:
        if incoming and _GOOD_REQUEST_ID.fullmatch(incoming):
            return incoming
        return f"{self._prefix}{next(self._counter):010x}"


def route_name(request: web.Request) -> str:
    """The route template (`/api/orders/{id}`), never the raw path: bounded metric labels."""
    info = request.match_info
    if info.http_exception is not None:
        return UNMATCHED_ROUTE
    resource = info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def edge_middleware(
    metrics: HttpCollector, cors_origins: tuple[str, ...], max_body_size: int
) -> Middleware:
    ids = RequestIds()
    allowed_origins = frozenset(cors_origins)
    any_origin = "*" in allowed_origins

    def cors_headers(request: web.Request) -> dict[str, str] | None:
        origin = request.headers.get(hdrs.ORIGIN)
        if origin is None or not (any_origin or origin in allowed_origins):
            return None
        return {
            hdrs.ACCESS_CONTROL_ALLOW_ORIGIN: origin,
            hdrs.ACCESS_CONTROL_ALLOW_CREDENTIALS: "true",
            hdrs.VARY: "Origin",
        }

    @web.middleware
    async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
        request_id = ids.take(request.headers.get(REQUEST_ID_HEADER))
        request[REQUEST_ID_KEY] = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        metrics.in_flight += 1
        cors = cors_headers(request) if allowed_origins else None
        try:
            if cors is not None and _is_preflight(request):
                response: web.StreamResponse = _preflight(request, cors)
            else:
                response = await _handle(request, handler, max_body_size)
                if cors is not None:
                    cors[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = REQUEST_ID_HEADER
                    response.headers.update(cors)
            _maybe_compress(request, response)
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            elapsed = time.perf_counter() - started
            metrics.in_flight -= 1
            status = _status_of(request)
            metrics.observe(request.method, route_name(request), status, elapsed)
            if access_logger.isEnabledFor(logging.INFO):
                ms = round(elapsed * 1000, 2)
                log_access(request.method, request.path, status, ms, route_name(request))
            request_id_var.reset(token)

    return edge


_STATUS_KEY: Final = web.RequestKey("response_status", int)


def _status_of(request: web.Request) -> int:
    status: int = request.get(_STATUS_KEY, 500)
    return status


async def _handle(request: web.Request, handler: Handler, max_body_size: int) -> web.StreamResponse:
    """Call the handler; every refusal leaves in one JSON shape, unknown failures as 500."""
    try:
        response = await handler(request)
    except DeerError as exc:
        response = domain_error_response(exc)
    except HttpError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            request[_STATUS_KEY] = exc.status
            raise
        response = _from_http_exception(exc, max_body_size)
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        response = error_response(500, "internal", "internal error; quote the request id")
    request[_STATUS_KEY] = response.status
    return response


def _is_preflight(request: web.Request) -> bool:
    return (
        request.method == hdrs.METH_OPTIONS
        and hdrs.ACCESS_CONTROL_REQUEST_METHOD in request.headers
    )


def _preflight(request: web.Request, cors: dict[str, str]) -> web.Response:
    headers = {
        **cors,
        hdrs.ACCESS_CONTROL_ALLOW_METHODS: CORS_METHODS,
        hdrs.ACCESS_CONTROL_ALLOW_HEADERS: request.headers.get(
            hdrs.ACCESS_CONTROL_REQUEST_HEADERS, "Authorization, Content-Type"
        ),
        hdrs.ACCESS_CONTROL_MAX_AGE: CORS_MAX_AGE,
    }
    request[_STATUS_KEY] = 204
    return web.Response(status=204, headers=headers)


def _maybe_compress(request: web.Request, response: web.StreamResponse) -> None:
    """gzip or deflate bodies over 1 KiB when the client accepts it (aiohttp picks which)."""
    if (
        isinstance(response, web.Response)
        and isinstance(response.body, bytes)
        and len(response.body) > COMPRESS_MIN_BYTES
        and hdrs.CONTENT_ENCODING not in response.headers
    ):
        accepted = request.headers.get(hdrs.ACCEPT_ENCODING, "")
        if "gzip" in accepted or "deflate" in accepted:
            response.enable_compression()


def _from_http_exception(exc: web.HTTPException, max_body_size: int) -> web.Response:
    fallback = ("internal" if exc.status >= 500 else "bad_request", exc.reason)
    code, message = HTTP_CODES.get(exc.status, fallback)
    details: dict[str, object] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        details["allowed"] = allowed
        headers[hdrs.ALLOW] = ",".join(allowed)
        message = f"{exc.method} is not allowed here; use {', '.join(allowed)}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        details["limit_bytes"] = max_body_size
        message = f"the request body is larger than the limit of {max_body_size} bytes"
    return error_response(exc.status, code, message, details, headers or None)
