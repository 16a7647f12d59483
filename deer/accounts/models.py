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


class Position(Model):
    """A job in a department (销售专员, 运营主管 ...) with the number of people it plans for."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "deer.Department", related_name="positions", null=True, on_delete=fields.RESTRICT
    )
    headcount = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "position"


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
    department_id: int | None
    position: fields.ForeignKeyNullableRelation[Position] = fields.ForeignKeyField(
        "deer.Position", related_name="users", null=True, on_delete=fields.SET_NULL
    )
    position_id: int | None
    roles: fields.ManyToManyRelation[Role] = fields.ManyToManyField(
        "deer.Role", related_name="users", through="user_role"
    )
    # Bumped to end every session at once (password change, disable, role change).
    session_generation = fields.IntField(default=0, db_default=0)
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
    total_spent = fields.BigIntField(default=0)  # fen, paid minus refunded
    paid_orders = fields.IntField(default=0, db_default=0)
    tags: fields.Field[list[str]] = fields.JSONField(default=list, db_default="[]")
    session_generation = fields.IntField(default=0, db_default=0)
    last_login_at = fields.DatetimeField(null=True)
    last_login_ip = fields.CharField(max_length=45, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "member"


class MemberNote(Model):
    """A staff note on a member (called back, prefers invoices, ...)."""

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "deer.Member", related_name="notes", on_delete=fields.CASCADE
    )
    member_id: int
    author: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "deer.User", related_name="member_notes", null=True, on_delete=fields.SET_NULL
    )
    author_id: int | None
    body = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "member_note"


class PointsEntry(Model):
    """One change of a member's points: earned on a paid order, revoked on a refund, adjusted
    by staff. `(member, kind, ref)` is unique, so each cause counts once however often it is
    applied (`ref`: `order:<id>`, `refund:<no>`, or a staff adjustment's request id)."""

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "deer.Member", related_name="points_entries", on_delete=fields.CASCADE
    )
    member_id: int
    kind = fields.CharField(max_length=16)  # earn, revoke, adjust
    ref = fields.CharField(max_length=96)
    points = fields.BigIntField()  # signed
    amount = fields.BigIntField(default=0)  # fen the entry is for (paid or refunded)
    order_id = fields.BigIntField(null=True, db_index=True)
    note = fields.CharField(max_length=256, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "points_entry"
        unique_together = (("member", "kind", "ref"),)


class AuditLog(Model):
    """Who did what, when, from where, and how it ended. Written, never edited."""

    id = fields.BigIntField(primary_key=True)
    actor_kind = fields.CharField(max_length=16)  # staff, member, anonymous, system
    actor_id = fields.BigIntField(null=True)
    actor_name = fields.CharField(max_length=64, default="")
    action = fields.CharField(max_length=64)  # auth.login, user.create, policy.add ...
    target_type = fields.CharField(max_length=32, default="")
    target_id = fields.CharField(max_length=64, default="")
    result = fields.CharField(max_length=16)  # ok, denied, failed
    ip = fields.CharField(max_length=45, default="")
    user_agent = fields.CharField(max_length=256, default="")
    request_id = fields.CharField(max_length=128, default="")
    details: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "audit_log"
        indexes = (("actor_kind", "actor_id", "created_at"), ("action", "created_at"))
