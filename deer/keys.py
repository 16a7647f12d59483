"""Typed application keys: the one place that says what lives on the aiohttp app."""

from __future__ import annotations

from aiohttp import web
from redis.asyncio import Redis

from config.settings import Settings
from deer.db import Database
from deer.web.metrics import Metrics

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
DATABASE = web.AppKey("database", Database)
METRICS = web.AppKey("metrics", Metrics)
