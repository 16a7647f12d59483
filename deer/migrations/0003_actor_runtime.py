from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('deer', '0002_identity_and_access')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ActorOutbox',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=64)),
                ('key', fields.CharField(max_length=255)),
                ('message_id', fields.CharField(max_length=48)),
                ('event', fields.JSONField(encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'actor_outbox', 'app': 'deer', 'pk_attr': 'id', 'table_description': 'Events waiting for the relay to deer:events (transactional outbox).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ActorPartition',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=64)),
                ('partition', fields.IntField()),
                ('fencing_token', fields.BigIntField()),
                ('acquired_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'actor_partition', 'app': 'deer', 'unique_together': (('kind', 'partition'),), 'pk_attr': 'id', 'table_description': 'Fencing tokens per actor partition: a stale owner cannot commit.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ActorState',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=64)),
                ('key', fields.CharField(max_length=255)),
                ('state', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('last_message_id', fields.CharField(max_length=48)),
                ('last_command_id', fields.CharField(db_default='', max_length=64)),
                ('last_reply', fields.JSONField(null=True, encoder=JSON_DUMPS, decoder=loads)),
                ('version', fields.BigIntField(db_default=1)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'actor_state', 'app': 'deer', 'unique_together': (('kind', 'key'),), 'pk_attr': 'id', 'table_description': 'The committed state of each actor, with the message that caused it.'},
            bases=['Model'],
        ),
    ]
