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

-- name: delete_many
DELETE FROM kv WHERE namespace = %(namespace)s AND key = ANY(%(keys)s::text[]);

-- name: claim
-- One document, locked by this transaction until it ends; no row when another
-- transaction holds it (SKIP LOCKED) or it is gone. The cluster's fenced outbox.
SELECT value FROM kv WHERE namespace = %(namespace)s AND key = %(key)s FOR UPDATE SKIP LOCKED;

-- name: exists
SELECT EXISTS (SELECT 1 FROM kv WHERE namespace = %(namespace)s AND key = %(key)s);

-- name: put_new
-- A document only if none exists under its key: true when this call wrote it.
INSERT INTO kv (namespace, key, value, updated) VALUES (%(namespace)s, %(key)s, %(value)s::jsonb, now())
ON CONFLICT (namespace, key) DO NOTHING RETURNING true;
