from tortoise import migrations
from tortoise.migrations import operations as ops
from deer.catalog.models import ReservationState, StockChange
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('deer', '0003_actor_runtime')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MemberNote',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('deer.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='notes', on_delete=OnDelete.CASCADE)),
                ('author', fields.ForeignKeyField('deer.User', source_field='author_id', null=True, db_constraint=True, to_field='id', related_name='member_notes', on_delete=OnDelete.SET_NULL)),
                ('body', fields.TextField(unique=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'member_note', 'app': 'deer', 'pk_attr': 'id', 'table_description': 'A staff note on a member (called back, prefers invoices, ...).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OrderRequest',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('deer.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='order_requests', on_delete=OnDelete.CASCADE)),
                ('idempotency_key', fields.CharField(max_length=128)),
                ('body_hash', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'order_request', 'app': 'deer', 'unique_together': (('member', 'idempotency_key'),), 'pk_attr': 'id', 'table_description': "One `POST /api/orders` by idempotency key: its id is the order's id, so the same key"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PaymentNotice',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('provider', fields.CharField(max_length=16)),
                ('transaction_id', fields.CharField(max_length=64)),
                ('event_type', fields.CharField(max_length=32)),
                ('out_trade_no', fields.CharField(default='', max_length=64)),
                ('order_id', fields.BigIntField(null=True, db_index=True)),
                ('amount', fields.BigIntField(default=0)),
                ('status', fields.CharField(default='received', max_length=16)),
                ('error', fields.CharField(default='', max_length=256)),
                ('payload', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'payment_notice', 'app': 'deer', 'unique_together': (('provider', 'transaction_id', 'event_type'),), 'pk_attr': 'id', 'table_description': "A payment provider's callback, recorded once per (provider, transaction, event type):"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PointsEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('deer.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='points_entries', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=16)),
                ('ref', fields.CharField(max_length=96)),
                ('points', fields.BigIntField()),
                ('amount', fields.BigIntField(default=0)),
                ('order_id', fields.BigIntField(null=True, db_index=True)),
                ('note', fields.CharField(default='', max_length=256)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'points_entry', 'app': 'deer', 'unique_together': (('member', 'kind', 'ref'),), 'pk_attr': 'id', 'table_description': "One change of a member's points: earned on a paid order, revoked on a refund, adjusted"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StockMovement',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('product', fields.ForeignKeyField('deer.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='stock_movements', on_delete=OnDelete.CASCADE)),
                ('change', fields.CharEnumField(description='SET: set\nDELTA: delta\nIMPORT: import\nRESERVE: reserve\nRELEASE: release\nRESTORE: restore', enum_type=StockChange, max_length=16)),
                ('delta', fields.BigIntField()),
                ('stock_after', fields.BigIntField()),
                ('reason', fields.CharField(default='', max_length=256)),
                ('user_id', fields.BigIntField(null=True)),
                ('order_id', fields.BigIntField(null=True, db_index=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'stock_movement', 'app': 'deer', 'indexes': [Index(fields=['product_id', 'created_at'])], 'pk_attr': 'id', 'table_description': "Every change of a product's stock, with who or which order caused it, and why."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='StockReservation',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.BigIntField()),
                ('product', fields.ForeignKeyField('deer.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='reservations', on_delete=OnDelete.RESTRICT)),
                ('quantity', fields.BigIntField()),
                ('state', fields.CharEnumField(default=ReservationState.RESERVED, description='RESERVED: reserved\nRELEASED: released\nRESTORED: restored', enum_type=ReservationState, max_length=16)),
                ('sold', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'stock_reservation', 'app': 'deer', 'unique_together': (('order_id', 'product'),), 'pk_attr': 'id', 'table_description': 'The stock an order holds of a product: reserved once per (order, product), released'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Member',
            name='paid_orders',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Member',
            name='tags',
            field=fields.JSONField(default=list, db_default='[]', encoder=JSON_DUMPS, decoder=loads),
        ),
            # Orders live in actor_state (kind 'order', key = order id): the order center's lists.
        ops.RunSQL(
            "CREATE UNIQUE INDEX actor_state_order_sn ON actor_state ((state->>'sn'))"
            " WHERE kind = 'order'",
            reverse_sql='DROP INDEX actor_state_order_sn',
        ),
        ops.RunSQL(
            "CREATE INDEX actor_state_order_member ON actor_state"
            " (((state->>'member_id')::bigint), (key::bigint) DESC) WHERE kind = 'order'",
            reverse_sql='DROP INDEX actor_state_order_member',
        ),
        ops.RunSQL(
            "CREATE INDEX actor_state_order_id ON actor_state ((key::bigint) DESC)"
            " WHERE kind = 'order'",
            reverse_sql='DROP INDEX actor_state_order_id',
        ),
        ops.RunSQL(
            "CREATE INDEX actor_state_order_status ON actor_state"
            " ((state->>'status'), (key::bigint) DESC) WHERE kind = 'order'",
            reverse_sql='DROP INDEX actor_state_order_status',
        ),
        # Reserve an order's stock, all lines or none, once per order: the rows are locked in
        # id order (no deadlock between orders sharing products); the shortages come back and
        # nothing changes when any line lacks stock. Called again for the same order (a turn
        # applied twice after a crash) it changes nothing and reports no shortage.
        ops.RunSQL(
            """
CREATE FUNCTION deer_reserve_stock(p_order bigint, p_products bigint[], p_quantities bigint[])
RETURNS TABLE (product_id bigint, wanted bigint, available bigint)
LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM stock_reservation r WHERE r.order_id = p_order) THEN
    RETURN;
  END IF;
  PERFORM 1 FROM product p WHERE p.id = ANY (p_products) ORDER BY p.id FOR UPDATE;
  RETURN QUERY
    SELECT w.pid, w.qty, COALESCE(p.stock, 0)
    FROM unnest(p_products, p_quantities) AS w (pid, qty)
    LEFT JOIN product p ON p.id = w.pid
    WHERE p.stock IS NULL OR p.stock < w.qty;
  IF FOUND THEN
    RETURN;
  END IF;
  -- No WAL flush of its own: the order actor's commit that follows flushes the WAL past this
  -- one. After a crash in between, the command (still pending in Redis) is handled again: a
  -- reservation that survived is found above, a lost one is made again.
  PERFORM set_config('synchronous_commit', 'off', true);
  WITH w AS (SELECT * FROM unnest(p_products, p_quantities) AS w (pid, qty)),
  moved AS (
    UPDATE product p SET stock = p.stock - w.qty FROM w WHERE p.id = w.pid
    RETURNING p.id, p.stock, w.qty
  ),
  held AS (
    INSERT INTO stock_reservation (order_id, product_id, quantity, state, sold, created_at,
                                   updated_at)
    SELECT p_order, m.id, m.qty, 'reserved', false, now(), now() FROM moved m
  )
  INSERT INTO stock_movement (product_id, change, delta, stock_after, reason, order_id,
                              created_at)
  SELECT m.id, 'reserve', -m.qty, m.stock, '', p_order, now() FROM moved m;
END
$$
""",
            reverse_sql='DROP FUNCTION deer_reserve_stock(bigint, bigint[], bigint[])',
        ),
    ]
