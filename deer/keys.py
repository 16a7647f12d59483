"""Typed application keys: the one place that says what lives on the aiohttp app."""

from __future__ import annotations

from aiohttp import ClientSession, web
from redis.asyncio import Redis

from actors.runtime import Runtime
from config.settings import Settings
from deer.access.policy import Policies
from deer.accounts.sessions import Sessions
from deer.accounts.tokens import Tokens
from deer.db import Database
from deer.payments.provider import PaymentSink
from deer.payments.registry import Payments
from deer.ratelimit import Limiter
from deer.web.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
TOKENS = web.AppKey("tokens", Tokens)
POLICIES = web.AppKey("policies", Policies)
LIMITER = web.AppKey("limiter", Limiter)
SESSIONS = web.AppKey("sessions", Sessions)
HTTP = web.AppKey("http_client", ClientSession)  # outgoing calls (WeChat)
ACTORS = web.AppKey("actors", Runtime)
PAYMENTS = web.AppKey("payments", Payments)  # the enabled payment providers
PAYMENT_SINK = web.AppKey[PaymentSink]("payment_sink")  # the order side: applies payment events
