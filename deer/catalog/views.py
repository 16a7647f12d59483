"""Products as callers read them: the full view staff see, and the public document (no cost)
that members read and that product events carry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from deer.catalog.categories import CategoryPath, category_paths
from deer.catalog.models import Product, ProductStatus
from deer.errors import NotFound


@dataclass(frozen=True)
class ProductView:
    id: int
    code: str
    name: str
    category: CategoryPath
    description: str
    images: list[str]
    price: int  # fen
    cost: int  # fen; staff only
    stock: int
    sales: int
    channels: list[str]
    sale_start: dt.datetime | None
    sale_end: dt.datetime | None
    status: ProductStatus
    created_at: dt.datetime
    updated_at: dt.datetime


async def views_of(products: Sequence[Product]) -> list[ProductView]:
    """The views of these products, with their category paths read in one query."""
    paths = await category_paths({product.category_id for product in products})
    views = []
    for product in products:
        category_id: int = product.category_id
        views.append(
            ProductView(
                id=product.id,
                code=product.code,
                name=product.name,
                category=paths.get(category_id) or CategoryPath(category_id, "", (), ()),
                description=product.description,
                images=list(product.images),
                price=product.price,
                cost=product.cost,
                stock=product.stock,
                sales=product.sales,
                channels=list(product.channels),
                sale_start=product.sale_start,
                sale_end=product.sale_end,
                status=ProductStatus(product.status),
                created_at=product.created_at,
                updated_at=product.updated_at,
            )
        )
    return views


async def product_view(product_id: int) -> ProductView:
    product = await Product.get_or_none(id=product_id)
    if product is None:
        raise NotFound(f"no product has the id {product_id}")
    return (await views_of([product]))[0]


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def public_document(view: ProductView) -> dict[str, Any]:
    """The product as JSON anyone may read (events, search): everything but the cost."""
    return {
        "id": view.id,
        "code": view.code,
        "name": view.name,
        "category": {
            "id": view.category.id,
            "name": view.category.name,
            "path": view.category.path,
            "path_ids": list(view.category.ids),
        },
        "description": view.description,
        "images": view.images,
        "price": view.price,
        "status": str(view.status),
        "stock": view.stock,
        "sales": view.sales,
        "channels": view.channels,
        "sale_start": _time(view.sale_start),
        "sale_end": _time(view.sale_end),
        "created_at": _time(view.created_at),
        "updated_at": _time(view.updated_at),
    }
