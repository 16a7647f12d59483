"""The application factory: wiring only, no I/O until the app starts."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from config.settings import Settings
from deer import cache, db, keys
from deer.logs import install_request_ids
from deer.web import ops
from deer.web.metrics import Metrics
from deer.web.middlewares import edge_middleware
from deer.web.openapi import build_document

log = logging.getLogger(__name__)


async def database_context(app: web.Application) -> AsyncIterator[None]:
    async with db.database(app[keys.SETTINGS]) as database:
        app[keys.DATABASE] = database
        app[keys.METRICS].watch_pool(database.pool)
        yield


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    async with cache.redis_client(app[keys.SETTINGS]) as redis:
        app[keys.REDIS] = redis
        yield


async def openapi_context(app: web.Application) -> AsyncIterator[None]:
    app[ops.OPENAPI_KEY] = build_document(app)  # the router is frozen now: build it once
    yield


def create_app(settings: Settings) -> web.Application:
    """Build the app. Resources open in its cleanup contexts, in dependency order."""
    install_request_ids()
    metrics = Metrics()
    app = web.Application(
        client_max_size=settings.max_body_size,
        middlewares=[
            edge_middleware(metrics.http, settings.cors_origins, settings.max_body_size),
        ],
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app.cleanup_ctx.extend([database_context, redis_context, openapi_context])
    ops.register(app)
    return app
