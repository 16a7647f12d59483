from tortoise import migrations
from tortoise.migrations import operations as ops
from deer.accounts.models import MemberCondition, UserStatus
from deer.catalog.models import ProductStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.migrations.constraints import CheckConstraint

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Category',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('parent', fields.ForeignKeyField('deer.Category', source_field='parent_id', null=True, db_constraint=True, to_field='id', related_name='children', on_delete=OnDelete.RESTRICT)),
                ('sort', fields.IntField(default=0)),
                ('enabled', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'category', 'app': 'deer', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Member',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('mobile', fields.CharField(null=True, unique=True, max_length=20)),
                ('name', fields.CharField(max_length=64)),
                ('avatar', fields.CharField(null=True, max_length=512)),
                ('password_hash', fields.CharField(null=True, max_length=255)),
                ('wechat_openid', fields.CharField(null=True, unique=True, max_length=64)),
                ('wechat_unionid', fields.CharField(null=True, db_index=True, max_length=64)),
                ('condition', fields.CharEnumField(default=MemberCondition.POTENTIAL, description='POTENTIAL: potential\nFORMAL: formal\nFROZEN: frozen\nEXPIRED: expired', enum_type=MemberCondition, max_length=16)),
                ('level', fields.SmallIntField(default=0)),
                ('points', fields.BigIntField(default=0)),
                ('total_spent', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'member', 'app': 'deer', 'pk_attr': 'id', 'table_description': 'A shopper, from the WeChat mini-program or the web.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Product',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=128)),
                ('category', fields.ForeignKeyField('deer.Category', source_field='category_id', db_constraint=True, to_field='id', related_name='products', on_delete=OnDelete.RESTRICT)),
                ('description', fields.TextField(default='', unique=False)),
                ('images', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('price', fields.BigIntField()),
                ('cost', fields.BigIntField(default=0)),
                ('stock', fields.BigIntField(default=0)),
                ('sales', fields.BigIntField(default=0)),
                ('channels', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('sale_start', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('sale_end', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('status', fields.CharEnumField(default=ProductStatus.DRAFT, db_index=True, description='DRAFT: draft\nONLINE: online\nOFFLINE: offline\nDELETED: deleted', enum_type=ProductStatus, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'product', 'app': 'deer', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Role',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('name', fields.CharField(max_length=64)),
                ('builtin', fields.BooleanField(default=False)),
            ],
            options={'table': 'role', 'app': 'deer', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Department',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=64)),
                ('parent', fields.ForeignKeyField('deer.Department', source_field='parent_id', null=True, db_constraint=True, to_field='id', related_name='children', on_delete=OnDelete.RESTRICT)),
                ('sort', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'department', 'app': 'deer', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('username', fields.CharField(unique=True, max_length=32)),
                ('mobile', fields.CharField(null=True, unique=True, max_length=20)),
                ('name', fields.CharField(max_length=64)),
                ('email', fields.CharField(null=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('status', fields.CharEnumField(default=UserStatus.ACTIVE, description='ACTIVE: active\nDISABLED: disabled', enum_type=UserStatus, max_length=16)),
                ('department', fields.ForeignKeyField('deer.Department', source_field='department_id', null=True, db_constraint=True, to_field='id', related_name='users', on_delete=OnDelete.SET_NULL)),
                ('roles', fields.ManyToManyField('deer.Role', unique=True, db_constraint=True, through='user_role', forward_key='role_id', backward_key='staff_user_id', related_name='users', on_delete=OnDelete.CASCADE)),
                ('last_login_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_login_ip', fields.CharField(null=True, max_length=45)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'staff_user', 'app': 'deer', 'pk_attr': 'id', 'table_description': 'A staff user of the web admin.'},
            bases=['Model'],
        ),
        # Department and User refer to each other: the manager key is added once both exist.
        ops.AddField('Department', 'manager', fields.ForeignKeyField('deer.User', source_field='manager_id', null=True, db_constraint=True, to_field='id', related_name='managed_departments', on_delete=OnDelete.SET_NULL)),
        # One name per parent, roots included (NULL parents compare equal through COALESCE).
        ops.RunSQL('CREATE UNIQUE INDEX department_parent_name_key ON department (COALESCE(parent_id, 0), name)', reverse_sql='DROP INDEX department_parent_name_key'),
        ops.RunSQL('CREATE UNIQUE INDEX category_parent_name_key ON category (COALESCE(parent_id, 0), name)', reverse_sql='DROP INDEX category_parent_name_key'),
        ops.AddConstraint('Product', CheckConstraint(check='stock >= 0', name='product_stock_not_negative')),
        ops.AddConstraint('Product', CheckConstraint(check='price >= 0 AND cost >= 0', name='product_money_not_negative')),
    ]
