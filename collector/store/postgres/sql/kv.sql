-- The alerting side's documents (alert state, notification log, outbox,
-- silences): one row per (namespace, key), the value as jsonb. Loaded by kv.py.

-- name: put_many
INSERT INTO kv (namespace, key, value, updated)
SELECT %(namespace)s, k, v::jsonb, now() FROM unnest(%(keys)s::text[], %(values)s::text[]) AS t(k, v)
ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, updated = now();

-- name: get
SELECT value FROM kv WHERE namespace = %(namespace)s AND key = %(key)s;

-- name: list
SELECT key, value FROM kv WHERE namespace = %(namespace)s;

-- name: delete
DELETE FROM kv WHERE namespace = %(namespace)s AND key = %(key)s;

-- name: list_namespaces
SELECT namespace, count(*) FROM kv GROUP BY namespace;
