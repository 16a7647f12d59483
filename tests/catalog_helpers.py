"""Catalog rows made directly in the database, the callers the catalog tests use, and the
product events as the relay publishes them to the Redis stream."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from aiohttp.test_utils import TestClient

from actors.outbox import OutboxRelay, events_key
from deer import keys
from deer.accounts.models import AuditLog
from deer.catalog.models import Category, Product, ProductStatus, StockMovement
from tests.auth_helpers import member_token, staff_token

Client = TestClient[Any, Any]

NOW = dt.datetime.now(dt.UTC)
HOUR = dt.timedelta(hours=1)


async def make_category(
    name: str, parent: Category | None = None, *, sort: int = 0, enabled: bool = True
) -> Category:
    return await Category.create(name=name, parent=parent, sort=sort, enabled=enabled)


async def make_product(code: str, category: Category, **fields: Any) -> Product:
    """A product on sale on both channels unless `fields` say otherwise."""
    values: dict[str, Any] = {
        "name": f"商品 {code}",
        "price": 9_900,
        "cost": 5_000,
        "stock": 10,
        "channels": ["mini_program", "web"],
        "status": ProductStatus.ONLINE,
    }
    return await Product.create(code=code, category=category, **{**values, **fields})


async def ops(client: Client) -> str:
    return await staff_token(client, "ops_lina", ["ops"])


async def shopper(client: Client) -> str:
    return await member_token(client, "13800000001")


async def catalog_state() -> tuple[Any, ...]:
    """Every row a catalog write could change (to assert a refusal changed nothing). The
    catalog tests relay the outbox themselves (`manual_outbox_relay`), so its rows stay."""
    return (
        await Category.all().order_by("id").values(),
        await Product.all().order_by("id").values(),
        await StockMovement.all().order_by("id").values(),
        await AuditLog.exclude(action__startswith="auth.").count(),
        await outbox_rows(),
    )


async def outbox_rows() -> list[dict[str, Any]]:
    from actors.models import ActorOutbox

    return await ActorOutbox.all().order_by("id").values("kind", "key", "message_id")


async def relayed_events(client: Client) -> list[dict[str, Any]]:
    """Relay the outbox to `deer:events` and answer every product event on the stream."""
    app = client.app
    relay = OutboxRelay(app[keys.SETTINGS], app[keys.REDIS])
    while await relay.relay_once():
        pass
    entries = await app[keys.REDIS].xrange(events_key(app[keys.SETTINGS]))
    found = []
    for _, entry in entries:
        fields = {k.decode(): v.decode() for k, v in entry.items()}
        if fields["kind"] == "product":
            event = orjson.loads(fields["event"])
            assert fields["key"] == str(event["product"]["id"])
            found.append(event)
    return found
