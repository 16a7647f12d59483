"""The actor runtime's tables: actor state, partition fencing tokens, the event outbox."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class ActorState(Model):
    """One actor's state and the stream message that produced it (exactly-once effects)."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=64)
    key = fields.CharField(max_length=255)
    state: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    last_message_id = fields.CharField(max_length=48)  # "<ms>-<seq>" of the partition stream
    last_command_id = fields.CharField(max_length=64, db_default="")
    last_reply: fields.Field[Any] = fields.JSONField(null=True)  # re-sent if the ack was lost
    version = fields.BigIntField(db_default=1)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "actor_state"
        unique_together = (("kind", "key"),)
        table_description = "The committed state of each actor, with the message that caused it."


class ActorPartition(Model):
    """The highest fencing token handed out for a partition; commits check theirs against it."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=64)
    partition = fields.IntField()
    fencing_token = fields.BigIntField()
    acquired_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "actor_partition"
        unique_together = (("kind", "partition"),)
        table_description = "Fencing tokens per actor partition: a stale owner cannot commit."


class ActorOutbox(Model):
    """Domain events written with the state change that caused them; relayed, then deleted."""

    id = fields.BigIntField(primary_key=True)
    kind = fields.CharField(max_length=64)
    key = fields.CharField(max_length=255)
    message_id = fields.CharField(max_length=48)
    event: fields.Field[dict[str, Any]] = fields.JSONField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "actor_outbox"
        table_description = "Events waiting for the relay to deer:events (transactional outbox)."
