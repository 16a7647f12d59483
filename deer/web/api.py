"""Declared endpoints: a handler says its body, query and response models once; the wrapper
validates input (422 with field paths), serialises output, and the OpenAPI document is
generated from the same declaration."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ValidationError

from deer.errors import ValidationFailed
from deer.web.responses import JSON, HttpError, json_response

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Callers = Literal["anyone", "members", "staff"]
ENDPOINT_ATTR: Final = "__deer_endpoint__"


def MalformedJson(message: str) -> HttpError:
    return HttpError(400, "malformed_json", message)


def UnsupportedMediaType(message: str) -> HttpError:
    return HttpError(415, "unsupported_media_type", message)


@dataclass(frozen=True)
class Endpoint:
    """What the OpenAPI document and the policy checks need to know about a route."""

    method: str
    path: str
    summary: str
    tags: tuple[str, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    public: bool = False
    # Only callers of this kind; others are refused (403) whatever their roles allow. A member
    # endpoint keys its data by the caller's id, which must never be a staff user's.
    content_type: str = JSON
    documented: bool = True  # False only for the docs page's own plumbing
    # Who may call, besides the policy: "members" (shoppers) or "staff" only; checked before
    # the body is read, so an admin calling a shopper's route gets 403 `members_only`.
    callers: Callers = "anyone"
    upload: str | None = None  # a multipart/form-data body: the name of its file field


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as `{path, reason}` with dotted paths a person can follow."""
    return [
        {
            "path": ".".join(str(part) for part in error["loc"]) or "(body)",
            "reason": str(error["msg"]).removeprefix("Value error, "),
        }
        for error in exc.errors(include_url=False, include_input=False)
    ]


def _invalid(exc: ValidationError, where: str) -> ValidationFailed:
    return ValidationFailed(f"the {where} has invalid fields", fields=field_errors(exc))


async def read_json(request: web.Request) -> Any:
    if request.content_type != JSON:
        raise UnsupportedMediaType(f"send the body as {JSON}, not {request.content_type}")
    raw = await request.read()
    if not raw:
        raise MalformedJson("the request body is empty; send a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"the request body is not valid JSON: {exc}") from None


async def parse_body(request: web.Request, model: type[BaseModel]) -> BaseModel:
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, "body") from None


def parse_query(request: web.Request, model: type[BaseModel]) -> BaseModel:
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, "query string") from None


class Api:
    """A table of declared endpoints, one per domain HTTP module."""

    def __init__(
        self, tags: Sequence[str] = (), *, public: bool = False, callers: Callers = "anyone"
    ) -> None:
        self.tags = tuple(tags)
        self.public = public  # the default of this table's endpoints
        self.callers: Callers = callers
        self.endpoints: list[tuple[Endpoint, Handler]] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: Sequence[int] = (),
        public: bool | None = None,
        content_type: str = JSON,
        tags: Sequence[str] | None = None,
        documented: bool = True,
        callers: Callers | None = None,
        upload: str | None = None,
    ) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
        endpoint = Endpoint(
            method=method.upper(),
            path=path,
            summary=summary,
            tags=tuple(tags) if tags is not None else self.tags,
            body=body,
            query=query,
            response=response,
            status=status,
            errors=tuple(errors),
            public=self.public if public is None else public,
            content_type=content_type,
            documented=documented,
            callers=self.callers if callers is None else callers,
            upload=upload,
        )

        def decorate(function: Callable[..., Awaitable[Any]]) -> Handler:
            async def handler(request: web.Request) -> web.StreamResponse:
                kwargs: dict[str, Any] = {}
                if query is not None:
                    kwargs["query"] = parse_query(request, query)
                if body is not None:
                    kwargs["body"] = await parse_body(request, body)
                result = await function(request, **kwargs)
                if isinstance(result, web.StreamResponse):
                    return result
                return json_response(result, status=status)

            handler.__name__ = function.__name__
            handler.__doc__ = function.__doc__
            setattr(handler, ENDPOINT_ATTR, endpoint)
            self.endpoints.append((endpoint, handler))
            return handler

        return decorate

    def get(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
        return self.route("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
        return self.route("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
        return self.route("PATCH", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
        return self.route("PUT", path, **kwargs)

    def delete(
        self, path: str, **kwargs: Any
    ) -> Callable[[Callable[..., Awaitable[Any]]], Handler]:
        return self.route("DELETE", path, **kwargs)

    def register(self, app: web.Application) -> None:
        for endpoint, handler in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, handler)


def endpoint_of(handler: object) -> Endpoint | None:
    found: Endpoint | None = getattr(handler, ENDPOINT_ATTR, None)
    return found
