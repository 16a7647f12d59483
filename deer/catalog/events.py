"""Product events: one `actor_outbox` row per product write, in the write's transaction.

The outbox relay (`actors.outbox.OutboxRelay`) publishes each row once to the Redis stream
`deer:events` (fields `kind` = `product`, `key` = the product id, `event` = the JSON below)
and deletes it, so an event exists if and only if its write committed. Every write locks the
product's row before it inserts its event, so the events of one product enter the outbox, and
the stream, in the order of the writes.
"""

from __future__ import annotations

import datetime as dt
import uuid
from enum import StrEnum
from typing import Any, Final

from actors.models import ActorOutbox
from deer.catalog.views import ProductView, public_document

OUTBOX_KIND: Final = "product"


class ProductEvent(StrEnum):
    CREATED = "product.created"
    UPDATED = "product.updated"  # details: `changes`, the names of the changed fields
    STATUS_CHANGED = "product.status_changed"  # details: `from`, `to`
    STOCK_CHANGED = "product.stock_changed"  # details: `change`, `delta`, `stock_after`, `reason`
    DELETED = "product.deleted"  # details: `from`


async def emit(event: ProductEvent, view: ProductView, **details: Any) -> str:
    """Queue the event in the current transaction; its id (unique) is returned."""
    event_id = uuid.uuid4().hex
    await ActorOutbox.create(
        kind=OUTBOX_KIND,
        key=str(view.id),
        message_id=event_id,
        event={
            "type": str(event),
            "id": event_id,
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "product": public_document(view),
            **details,
        },
    )
    return event_id
