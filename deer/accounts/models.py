"""Who uses deer: staff in departments with roles, and members who shop."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class MemberCondition(StrEnum):
    POTENTIAL = "potential"
    FORMAL = "formal"
    FROZEN = "frozen"
    EXPIRED = "expired"


class Department(Model):
    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    parent: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "deer.Department", related_name="children", null=True, on_delete=fields.RESTRICT
    )
    manager: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "deer.User", related_name="managed_departments", null=True, on_delete=fields.SET_NULL
    )
    sort = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "department"


class Role(Model):
    id = fields.BigIntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=64)
    builtin = fields.BooleanField(default=False)

    class Meta:
        table = "role"


class User(Model):
    """A staff user of the web admin."""

    id = fields.BigIntField(primary_key=True)
    username = fields.CharField(max_length=32, unique=True)
    mobile = fields.CharField(max_length=20, unique=True, null=True)
    name = fields.CharField(max_length=64)
    email = fields.CharField(max_length=254, null=True)
    password_hash = fields.CharField(max_length=255)
    status = fields.CharEnumField(UserStatus, max_length=16, default=UserStatus.ACTIVE)
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "deer.Department", related_name="users", null=True, on_delete=fields.SET_NULL
    )
    roles: fields.ManyToManyRelation[Role] = fields.ManyToManyField(
        "deer.Role", related_name="users", through="user_role"
    )
    last_login_at = fields.DatetimeField(null=True)
    last_login_ip = fields.CharField(max_length=45, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "staff_user"


class Member(Model):
    """A shopper, from the WeChat mini-program or the web."""

    id = fields.BigIntField(primary_key=True)
    mobile = fields.CharField(max_length=20, unique=True, null=True)
    name = fields.CharField(max_length=64)
    avatar = fields.CharField(max_length=512, null=True)
    password_hash = fields.CharField(max_length=255, null=True)
    wechat_openid = fields.CharField(max_length=64, unique=True, null=True)
    wechat_unionid = fields.CharField(max_length=64, null=True, db_index=True)
    condition = fields.CharEnumField(
        MemberCondition, max_length=16, default=MemberCondition.POTENTIAL
    )
    level = fields.SmallIntField(default=0)
    points = fields.BigIntField(default=0)
    total_spent = fields.BigIntField(default=0)  # fen
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "member"
