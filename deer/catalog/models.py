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
    category_id: int
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


class StockChange(StrEnum):
    SET = "set"  # staff set the stock to a value
    DELTA = "delta"  # staff added or removed some
    IMPORT = "import"  # a bulk import set it
    RESERVE = "reserve"  # an order was created
    RELEASE = "release"  # an unpaid order was cancelled or timed out
    RESTORE = "restore"  # an unshipped order was refunded


class StockMovement(Model):
    """Every change of a product's stock, with who or which order caused it, and why."""

    id = fields.BigIntField(primary_key=True)
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "deer.Product", related_name="stock_movements", on_delete=fields.CASCADE
    )
    product_id: int
    change = fields.CharEnumField(StockChange, max_length=16)
    delta = fields.BigIntField()  # signed
    stock_after = fields.BigIntField()
    reason = fields.CharField(max_length=256, default="")
    user_id = fields.BigIntField(null=True)  # the staff member, for set/delta/import
    order_id = fields.BigIntField(null=True, db_index=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "stock_movement"
        indexes = (("product_id", "created_at"),)


class ReservationState(StrEnum):
    RESERVED = "reserved"
    RELEASED = "released"
    RESTORED = "restored"


class StockReservation(Model):
    """The stock an order holds of a product: reserved once per (order, product), released
    or restored at most once (the order actor may apply a step twice after a crash)."""

    id = fields.BigIntField(primary_key=True)
    order_id = fields.BigIntField()
    product: fields.ForeignKeyRelation[Product] = fields.ForeignKeyField(
        "deer.Product", related_name="reservations", on_delete=fields.RESTRICT
    )
    quantity = fields.BigIntField()
    state = fields.CharEnumField(ReservationState, max_length=16, default=ReservationState.RESERVED)
    sold = fields.BooleanField(default=False)  # counted in the product's sales (order paid)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "stock_reservation"
        unique_together = (("order_id", "product"),)
