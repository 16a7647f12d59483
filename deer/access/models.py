"""Casbin policy rules as rows: defaults from `config/policy.csv`, plus what admins add."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class PolicyRule(Model):
    id = fields.BigIntField(primary_key=True)
    ptype = fields.CharField(max_length=8)  # p (permission) or g (role inheritance)
    v0 = fields.CharField(max_length=128)
    v1 = fields.CharField(max_length=256)
    v2 = fields.CharField(max_length=128, default="")
    # default: shipped in config/policy.csv; admin: added through the API
    source = fields.CharField(max_length=16, default="admin")
    # A default an admin removed stays here, disabled, so start-up does not bring it back.
    removed = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "policy_rule"
        unique_together = (("ptype", "v0", "v1", "v2"),)
