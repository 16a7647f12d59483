"""Operations and documentation endpoints: liveness, readiness, metrics, API docs, meta."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable
from typing import Final, Literal

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

import deer
from deer import keys
from deer.web.api import Api
from deer.web.openapi import SWAGGER_INIT, SWAGGER_PAGE, build_document, swagger_assets
from deer.web.responses import json_response

READY_TIMEOUT: Final = 2.0
OPENAPI_KEY: Final = web.AppKey("openapi_document", dict)

api = Api(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Check(BaseModel):
    ok: bool
    error: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    checks: dict[str, Check]


class Meta(BaseModel):
    name: str = "deer"
    version: str = Field(description="the running release")
    env: str
    time_zone: str = Field(description="the business time zone reports cut days in")
    server_time: dt.datetime = Field(description="now, in UTC")
    business_date: dt.date = Field(description="today in the business time zone")


@api.get("/healthz", summary="The process is alive", response=Health, public=True)
async def healthz(request: web.Request) -> Health:
    return Health()


@api.get(
    "/readyz",
    summary="PostgreSQL and Redis answer; 503 names the one that does not",
    response=Readiness,
    errors=[503],
    public=True,
)
async def readyz(request: web.Request) -> web.Response:
    async def probe(check: Awaitable[object]) -> Check:
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await check
        except TimeoutError:
            return Check(ok=False, error=f"no answer within {READY_TIMEOUT:.0f} s")
        except Exception as exc:  # readiness reports any failure, it never raises
            return Check(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
        return Check(ok=True)

    postgres, redis = await asyncio.gather(
        probe(request.app[keys.DATABASE].ping()), probe(request.app[keys.REDIS].ping())
    )
    ready = postgres.ok and redis.ok
    result = Readiness(
        status="ready" if ready else "unavailable", checks={"postgres": postgres, "redis": redis}
    )
    return json_response(result, status=200 if ready else 503)


@api.get("/metrics", summary="Prometheus metrics", public=True, content_type=CONTENT_TYPE_LATEST)
async def metrics(request: web.Request) -> web.Response:
    body = request.app[keys.METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@api.get("/api/meta", summary="Service name, version and clocks", response=Meta, public=True)
async def meta(request: web.Request) -> Meta:
    settings = request.app[keys.SETTINGS]
    now = dt.datetime.now(dt.UTC)
    return Meta(
        version=deer.__version__,
        env=settings.env,
        time_zone=settings.timezone,
        server_time=now,
        business_date=now.astimezone(settings.zone).date(),
    )


@api.get("/api/openapi.json", summary="This document", public=True)
async def openapi(request: web.Request) -> web.Response:
    document = request.app.get(OPENAPI_KEY)
    if document is None:
        document = build_document(request.app)
    return json_response(document)


@api.get("/api/docs", summary="Swagger UI", public=True, content_type="text/html", documented=False)
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=SWAGGER_PAGE, content_type="text/html")


@api.get(
    "/api/docs/static/deer-docs.js",
    summary="Swagger UI start-up",
    public=True,
    content_type="application/javascript",
    documented=False,
)
async def docs_init(request: web.Request) -> web.Response:
    return web.Response(text=SWAGGER_INIT, content_type="application/javascript")


def register(app: web.Application) -> None:
    api.register(app)
    app.router.add_static("/api/docs/static", swagger_assets(), name="swagger_static")
