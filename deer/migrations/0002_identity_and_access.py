from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('deer', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='AuditLog',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('actor_kind', fields.CharField(max_length=16)),
                ('actor_id', fields.BigIntField(null=True)),
                ('actor_name', fields.CharField(default='', max_length=64)),
                ('action', fields.CharField(max_length=64)),
                ('target_type', fields.CharField(default='', max_length=32)),
                ('target_id', fields.CharField(default='', max_length=64)),
                ('result', fields.CharField(max_length=16)),
                ('ip', fields.CharField(default='', max_length=45)),
                ('user_agent', fields.CharField(default='', max_length=256)),
                ('request_id', fields.CharField(default='', max_length=128)),
                ('details', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_log', 'app': 'deer', 'indexes': [Index(fields=['actor_kind', 'actor_id', 'created_at']), Index(fields=['action', 'created_at'])], 'pk_attr': 'id', 'table_description': 'Who did what, when, from where, and how it ended. Written, never edited.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PolicyRule',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('ptype', fields.CharField(max_length=8)),
                ('v0', fields.CharField(max_length=128)),
                ('v1', fields.CharField(max_length=256)),
                ('v2', fields.CharField(default='', max_length=128)),
                ('source', fields.CharField(default='admin', max_length=16)),
                ('removed', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'policy_rule', 'app': 'deer', 'unique_together': (('ptype', 'v0', 'v1', 'v2'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Position',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('department', fields.ForeignKeyField('deer.Department', source_field='department_id', null=True, db_constraint=True, to_field='id', related_name='positions', on_delete=OnDelete.RESTRICT)),
                ('headcount', fields.IntField(default=1)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'position', 'app': 'deer', 'pk_attr': 'id', 'table_description': 'A job in a department (销售专员, 运营主管 ...) with the number of people it plans for.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Member',
            name='last_login_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Member',
            name='last_login_ip',
            field=fields.CharField(null=True, max_length=45),
        ),
        ops.AddField(
            model_name='Member',
            name='session_generation',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='User',
            name='position',
            field=fields.ForeignKeyField('deer.Position', source_field='position_id', null=True, db_constraint=True, to_field='id', related_name='users', on_delete=OnDelete.SET_NULL),
        ),
        ops.AddField(
            model_name='User',
            name='session_generation',
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
