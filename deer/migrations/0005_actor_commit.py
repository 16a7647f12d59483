from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('deer', '0004_commerce')]

    initial = False

    operations = [
        # The fencing lock of an actor partition: a transaction-scoped advisory lock (two-int
        # form, apart from the single-bigint locks used elsewhere). Commits hold it shared, a new
        # owner recording its token holds it exclusively: no row lock, no write, no MultiXact.
        ops.RunSQL(
            """
CREATE FUNCTION deer_actor_fence_lock(p_kind text) RETURNS int
LANGUAGE sql IMMUTABLE AS $$ SELECT hashtext('deer.actor_partition:' || p_kind) $$
""",
            reverse_sql='DROP FUNCTION deer_actor_fence_lock(text)',
        ),
        # Raise a partition's fencing token above every earlier one (PostgreSQL is the
        # authority: max(stored + 1, offered)), after the commits in flight under the old token.
        ops.RunSQL(
            """
CREATE FUNCTION deer_record_token(p_kind text, p_partition int, p_token bigint)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  recorded bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(deer_actor_fence_lock(p_kind), p_partition);
  INSERT INTO actor_partition AS ap (kind, partition, fencing_token, acquired_at)
  VALUES (p_kind, p_partition, p_token, now())
  ON CONFLICT (kind, partition) DO UPDATE
    SET fencing_token = GREATEST(ap.fencing_token + 1, EXCLUDED.fencing_token),
        acquired_at = now()
  RETURNING ap.fencing_token INTO recorded;
  RETURN recorded;
END
$$
""",
            reverse_sql='DROP FUNCTION deer_record_token(text, int, bigint)',
        ),
        # Commit a batch of actor turns, atomically (one statement), in order. Per turn: the
        # partition's token, and the new version when it was written: only under the
        # partition's current token (the fencing check) and only at the version the turn read.
        # The shared fencing locks are taken first; every statement after them sees a token
        # recorded before (a VOLATILE function takes a new snapshot per statement), and no token
        # is recorded until this commits. One row per statement, each by its unique key: the
        # plans do not depend on the table's statistics.
        ops.RunSQL(
            """
CREATE FUNCTION deer_commit_turns(
  p_kind text, p_partitions int[], p_tokens bigint[], p_keys text[], p_states text[],
  p_message_ids text[], p_command_ids text[], p_replies text[], p_versions bigint[],
  p_events text[]
) RETURNS TABLE (fence bigint, written bigint)
LANGUAGE plpgsql AS $$
DECLARE
  lock_space int := deer_actor_fence_lock(p_kind);
  fence_of bigint[];  -- by partition number
  current record;
  i int;
BEGIN
  PERFORM pg_advisory_xact_lock_shared(lock_space, part)
  FROM (SELECT DISTINCT unnest(p_partitions) AS part ORDER BY 1) AS parts;
  FOR current IN
    SELECT ap.partition, ap.fencing_token FROM actor_partition AS ap
    WHERE ap.kind = p_kind AND ap.partition = ANY (p_partitions)
  LOOP
    fence_of[current.partition] := current.fencing_token;
  END LOOP;
  FOR i IN 1 .. coalesce(array_length(p_keys, 1), 0) LOOP
    written := NULL;
    fence := fence_of[p_partitions[i]];
    IF fence = p_tokens[i] THEN
      IF p_versions[i] > 0 THEN
        UPDATE actor_state AS s
        SET state = p_states[i]::jsonb, last_message_id = p_message_ids[i],
            last_command_id = p_command_ids[i], last_reply = p_replies[i]::jsonb,
            version = s.version + 1, updated_at = now()
        WHERE s.kind = p_kind AND s.key = p_keys[i] AND s.version = p_versions[i]
        RETURNING s.version INTO written;
      ELSE
        INSERT INTO actor_state AS s (kind, key, state, last_message_id, last_command_id,
                                      last_reply, version, updated_at)
        VALUES (p_kind, p_keys[i], p_states[i]::jsonb, p_message_ids[i], p_command_ids[i],
                p_replies[i]::jsonb, 1, now())
        ON CONFLICT (kind, key) DO NOTHING
        RETURNING s.version INTO written;
      END IF;
      IF written IS NOT NULL AND p_events[i] <> '[]' THEN
        INSERT INTO actor_outbox (kind, key, message_id, event, created_at)
        SELECT p_kind, p_keys[i], p_message_ids[i], e.event, now()
        FROM jsonb_array_elements(p_events[i]::jsonb) WITH ORDINALITY AS e (event, place)
        ORDER BY e.place;
      END IF;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$
""",
            reverse_sql=(
                'DROP FUNCTION deer_commit_turns(text, int[], bigint[], text[], text[], text[],'
                ' text[], text[], bigint[], text[])'
            ),
        ),
    ]
