"""Categories (a tree) and products; money in fen, stock never below zero."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint
from tortoise.models import Model


class ProductStatus(StrEnum):
    DRAFT = "draft"
    ONLINE = "online"
    OFFLINE = "offline"
    DELETED = "deleted"


class Category(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    parent: fields.ForeignKeyNullableRelation[Category] = fields.ForeignKeyField(
        "deer.Category", related_name="children", null=True, on_delete=fields.RESTRICT
    )
    sort = fields.IntField(default=0)
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "category"


class Product(Model):
    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    category: fields.ForeignKeyRelation[Category] = fields.ForeignKeyField(
        "deer.Category", related_name="products", on_delete=fields.RESTRICT
    )
    description = fields.TextField(default="")
    images: fields.Field[list[str]] = fields.JSONField(default=list)
    price = fields.BigIntField()  # fen
    cost = fields.BigIntField(default=0)  # fen
    stock = fields.BigIntField(default=0)
    sales = fields.BigIntField(default=0)
    channels: fields.Field[list[str]] = fields.JSONField(default=list)
    sale_start = fields.DatetimeField(null=True)
    sale_end = fields.DatetimeField(null=True)
    status = fields.CharEnumField(
        ProductStatus, max_length=16, default=ProductStatus.DRAFT, db_index=True
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "product"
        constraints = (
            CheckConstraint(check="stock >= 0", name="product_stock_not_negative"),
            CheckConstraint(check="price >= 0 AND cost >= 0", name="product_money_not_negative"),
        )
