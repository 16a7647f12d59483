"""Typed application keys: the one place that says what lives on the aiohttp app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from redis.asyncio import Redis

from config.settings import Settings

if TYPE_CHECKING:
    from deer.db import Database
    from deer.web.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
DATABASE = web.AppKey("database", "Database")
METRICS = web.AppKey("metrics", "Metrics")
