"""The application factory: wiring only, no I/O until the app starts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
from aiohttp import web

from actors import metrics as actor_metrics
from actors.registry import entity_actors
from actors.runtime import Runtime
from config.settings import Settings
from deer import cache, db, keys
from deer.access import http as access_http
from deer.access.policy import Policies
from deer.accounts import audit_http, members_http, org_http, profile_http, staff_http
from deer.accounts import http as accounts_http
from deer.accounts.sessions import Sessions, stored_generation
from deer.accounts.tokens import Tokens
from deer.catalog import http as catalog_http
from deer.logs import install_request_ids
from deer.payments import http as payments_http
from deer.payments.registry import build_payments
from deer.ratelimit import Limiter
from deer.shop import cart_http, orders_http
from deer.shop.payment_sink import OrderPayments, ProviderRefunds
from deer.web import commands as commands_http
from deer.web import dead_letters as dead_letters_http
from deer.web import ops
from deer.web.auth import auth_middleware
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


ACTORS_RETRY: Final = 1.0  # seconds between start attempts while a backend is down


async def actors_context(app: web.Application) -> AsyncIterator[None]:
    """The actor runtime: sends commands, and hosts the entity actors' partitions.

    With Redis or PostgreSQL down at start, the app still starts (readiness says which is
    down) and the runtime keeps trying in the background.
    """
    settings = app[keys.SETTINGS]
    refunds = ProviderRefunds(lambda: app[keys.PAYMENTS])
    runtime = Runtime(
        settings, app[keys.REDIS], entity_actors(settings, refunds), relay=settings.outbox_relay
    )
    app[keys.ACTORS] = runtime
    if keys.PAYMENT_SINK not in app:  # tests may set their own before start
        app[keys.PAYMENT_SINK] = OrderPayments(runtime)
    actor_metrics.register(app[keys.METRICS].registry, runtime)
    started, tried = asyncio.Event(), asyncio.Event()

    async def start() -> None:
        while True:
            try:
                await runtime.start()
            except Exception:
                log.exception("the actor runtime cannot start yet; retrying")
                await runtime.close(grace=0)
                tried.set()
                await asyncio.sleep(ACTORS_RETRY)
            else:
                started.set()
                tried.set()
                return

    starter = asyncio.create_task(start(), name="actor-runtime-start")
    await tried.wait()  # serve once the first attempt is over, whatever its outcome
    yield
    starter.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starter
    if started.is_set():
        await runtime.close()


async def http_client_context(app: web.Application) -> AsyncIterator[None]:
    """One client session for outgoing calls (WeChat), closed on shutdown."""
    async with aiohttp.ClientSession(raise_for_status=False) as session:
        app[keys.HTTP] = session
        yield


async def payments_context(app: web.Application) -> AsyncIterator[None]:
    """The enabled payment providers (they use Redis and the outgoing HTTP client)."""
    app[keys.PAYMENTS] = build_payments(app[keys.SETTINGS], app[keys.REDIS], app[keys.HTTP])
    yield


async def auth_context(app: web.Application) -> AsyncIterator[None]:
    settings, redis = app[keys.SETTINGS], app[keys.REDIS]
    tokens = Tokens(settings, redis, stored_generation)
    limiter = Limiter(redis)
    app[keys.TOKENS] = tokens
    app[keys.LIMITER] = limiter
    app[keys.SESSIONS] = Sessions(settings, tokens, limiter)
    yield


async def policy_context(app: web.Application) -> AsyncIterator[None]:
    """Casbin policies: defaults synced into PostgreSQL, loaded, reloaded on every change."""
    policies = Policies(app[keys.SETTINGS], app[keys.REDIS])
    await policies.start()
    app[keys.POLICIES] = policies
    yield
    await policies.close()


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
            auth_middleware,
        ],
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app.cleanup_ctx.extend(
        [
            database_context,
            redis_context,
            actors_context,
            http_client_context,
            payments_context,
            auth_context,
            policy_context,
            openapi_context,
        ]
    )
    ops.register(app)
    accounts_http.api.register(app)
    staff_http.api.register(app)
    org_http.api.register(app)
    members_http.api.register(app)
    profile_http.api.register(app)
    audit_http.api.register(app)
    access_http.api.register(app)
    orders_http.api.register(app)
    catalog_http.api.register(app)
    payments_http.register(app)
    cart_http.api.register(app)
    dead_letters_http.api.register(app)
    commands_http.api.register(app)
    return app
