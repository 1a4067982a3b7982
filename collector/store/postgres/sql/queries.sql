-- Every query of the PostgreSQL store, each named by the comment above it and
-- loaded by that name (queries.py). %(x)s are psycopg parameters; {x} are
-- identifiers filled in with psycopg.sql (partition names), never values.

-- name: load_series
SELECT series_id, metric, labels, kind, coalesce(unit, ''), coalesce(help, '') FROM series;

-- name: insert_series
INSERT INTO series (series_id, metric, labels, kind, unit, help)
VALUES (%(series_id)s, %(metric)s, %(labels)s, %(kind)s, %(unit)s, %(help)s)
ON CONFLICT (series_id) DO NOTHING;

-- name: hist_temp
-- The batch is copied here first; the table goes away at commit.
CREATE TEMP TABLE hist_in (LIKE hist INCLUDING DEFAULTS) ON COMMIT DROP;

-- name: hist_copy
COPY hist_in (series_id, ts, res, count, sum, min, max, p50, p90, p95, p99, bounds, buckets) FROM STDIN (FORMAT BINARY);

-- name: hist_insert_new
-- Rows whose (series, res, slot) is not stored yet go straight in; they leave
-- hist_in, which then holds only the rows to merge into stored ones. Sorted, so
-- two writers meeting on the same keys wait for each other in one order.
WITH ins AS (
    INSERT INTO hist SELECT * FROM hist_in ORDER BY series_id, res, ts
    ON CONFLICT (series_id, res, ts) DO NOTHING
    RETURNING series_id, res, ts)
DELETE FROM hist_in i USING ins
WHERE i.series_id = ins.series_id AND i.res = ins.res AND i.ts = ins.ts;

-- name: hist_lock_existing
-- The stored rows the batch merges into, locked until commit (another writer
-- merging into one of them waits, then reads our result), in read_hist's layout.
SELECT count(*), string_agg(int8send(series_id), ''), string_agg(timestamptz_send(ts), ''),
       string_agg(int4send(res), ''), string_agg(int8send(count), ''), string_agg(float8send(sum), ''),
       string_agg(float8send(min), ''), string_agg(float8send(max), ''),
       string_agg(int4send(length(buckets)), ''), string_agg(buckets, ''),
       string_agg(int4send(coalesce(length(bounds), -1)), ''), string_agg(bounds, '')
FROM (SELECT h.* FROM hist h JOIN hist_in i ON h.series_id = i.series_id AND h.res = i.res AND h.ts = i.ts
      ORDER BY h.series_id, h.res, h.ts FOR UPDATE OF h) locked;

-- name: hist_clear_temp
TRUNCATE hist_in;

-- name: hist_update_merged
UPDATE hist h SET count = i.count, sum = i.sum, min = i.min, max = i.max, p50 = i.p50, p90 = i.p90,
                  p95 = i.p95, p99 = i.p99, bounds = i.bounds, buckets = i.buckets
FROM hist_in i WHERE h.series_id = i.series_id AND h.res = i.res AND h.ts = i.ts;

-- name: hist_replace
-- db copy: the copied row replaces the stored one, so running the copy twice
-- leaves the same data.
INSERT INTO hist SELECT * FROM hist_in ORDER BY series_id, res, ts
ON CONFLICT (series_id, res, ts) DO UPDATE SET count = excluded.count, sum = excluded.sum, min = excluded.min,
    max = excluded.max, p50 = excluded.p50, p90 = excluded.p90, p95 = excluded.p95, p99 = excluded.p99,
    bounds = excluded.bounds, buckets = excluded.buckets;

-- name: read_hist
-- One row: every column of the matching rows concatenated in its binary send
-- format, split with numpy on our side (no per-row Python work).
SELECT count(*), string_agg(int8send(series_id), ''), string_agg(timestamptz_send(ts), ''),
       string_agg(int4send(res), ''), string_agg(int8send(count), ''), string_agg(float8send(sum), ''),
       string_agg(float8send(min), ''), string_agg(float8send(max), ''),
       string_agg(int4send(length(buckets)), ''), string_agg(buckets, ''),
       string_agg(int4send(coalesce(length(bounds), -1)), ''), string_agg(bounds, '')
FROM hist
WHERE res = %(res)s AND ts >= %(lo)s AND ts < %(hi)s AND series_id = ANY(%(ids)s::int8[]);

-- name: read_hist_counts
-- read_hist without the buckets: count and sum only (histogram_count, _count/_sum
-- series), in read_hist's layout with every row's bucket list empty.
SELECT count(*), string_agg(int8send(series_id), ''), string_agg(timestamptz_send(ts), ''),
       string_agg(int4send(res), ''), string_agg(int8send(count), ''), string_agg(float8send(sum), ''),
       string_agg(float8send(min), ''), string_agg(float8send(max), ''),
       string_agg(int4send(0), ''), ''::bytea,
       string_agg(int4send(-1), ''), ''::bytea
FROM hist
WHERE res = %(res)s AND ts >= %(lo)s AND ts < %(hi)s AND series_id = ANY(%(ids)s::int8[]);

-- name: read_hist_all
-- Every row of one resolution in [lo, hi): rollups and db copy's count check.
SELECT count(*), string_agg(int8send(series_id), ''), string_agg(timestamptz_send(ts), ''),
       string_agg(int4send(res), ''), string_agg(int8send(count), ''), string_agg(float8send(sum), ''),
       string_agg(float8send(min), ''), string_agg(float8send(max), ''),
       string_agg(int4send(length(buckets)), ''), string_agg(buckets, ''),
       string_agg(int4send(coalesce(length(bounds), -1)), ''), string_agg(bounds, '')
FROM hist WHERE res = %(res)s AND ts >= %(lo)s AND ts < %(hi)s;

-- name: samples_temp
CREATE TEMP TABLE samples_in (LIKE samples INCLUDING DEFAULTS) ON COMMIT DROP;

-- name: samples_copy
COPY samples_in (series_id, ts, value) FROM STDIN (FORMAT BINARY);

-- name: samples_upsert
INSERT INTO samples SELECT * FROM samples_in ORDER BY series_id, ts
ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value;

-- name: read_samples
SELECT count(*), string_agg(int8send(series_id), ''), string_agg(timestamptz_send(ts), ''),
       string_agg(float8send(value), '')
FROM (SELECT series_id, ts, value FROM samples
      WHERE ts >= %(lo)s AND ts <= %(hi)s AND series_id = ANY(%(ids)s::int8[])
      ORDER BY series_id, ts) s;

-- name: set_wal_marker
INSERT INTO wal_markers (writer, name, segment, updated) VALUES (%(writer)s, %(name)s, %(segment)s, now())
ON CONFLICT (writer, name) DO UPDATE SET segment = excluded.segment, updated = now();

-- name: get_wal_marker
SELECT segment FROM wal_markers WHERE writer = %(writer)s AND name = %(name)s;

-- name: get_meta
SELECT value FROM meta WHERE key = %(key)s;

-- name: set_meta
INSERT INTO meta (key, value) VALUES (%(key)s, %(value)s) ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: list_partitions
SELECT name, kind, res, (extract(epoch FROM start_ts))::bigint, (extract(epoch FROM end_ts))::bigint FROM partitions;

-- name: coverage_state
-- Per resolution: the oldest partition's start; and the rollup watermarks.
SELECT res, min((extract(epoch FROM start_ts))::bigint) FROM partitions WHERE kind = 'hist' GROUP BY res;

-- name: rollup_watermarks
SELECT key, value FROM meta WHERE key LIKE 'rollup!_%' ESCAPE '!';

-- name: add_partition_row
INSERT INTO partitions (name, kind, res, start_ts, end_ts)
VALUES (%(name)s, %(kind)s, %(res)s, to_timestamp(%(start)s), to_timestamp(%(end)s))
ON CONFLICT (name) DO NOTHING;

-- name: delete_partition_row
DELETE FROM partitions WHERE name = %(name)s;

-- name: min_ts_of_res
SELECT (extract(epoch FROM min(ts)))::bigint FROM hist WHERE res = %(res)s;

-- name: size_bytes
SELECT pg_database_size(current_database());

-- name: try_maintenance_lock
-- Transaction-scoped: one process (replica) maintains at a time; the others skip.
SELECT pg_try_advisory_xact_lock(7598177913758040424);

-- name: partition_lock
-- Transaction-scoped: partitions are created one process at a time.
SELECT pg_advisory_xact_lock(7598177913758040425);

-- name: exemplars_temp
CREATE TEMP TABLE exemplars_in (LIKE exemplars INCLUDING DEFAULTS) ON COMMIT DROP;

-- name: exemplars_copy
COPY exemplars_in (series_id, ts, grp, observed_at, value, trace_id, span_id) FROM STDIN (FORMAT BINARY);

-- name: exemplars_upsert
-- One exemplar per (series, slot, octave): the slowest. Sorted, so two writers
-- meeting on the same keys take their row locks in one order.
INSERT INTO exemplars SELECT * FROM exemplars_in ORDER BY series_id, ts, grp
ON CONFLICT (series_id, ts, grp) DO UPDATE SET observed_at = excluded.observed_at, value = excluded.value,
    trace_id = excluded.trace_id, span_id = excluded.span_id
WHERE excluded.value > exemplars.value;

-- name: read_exemplars
SELECT count(*), string_agg(int8send(series_id), ''), string_agg(timestamptz_send(ts), ''),
       string_agg(int2send(grp), ''), string_agg(timestamptz_send(observed_at), ''),
       string_agg(float8send(value), ''), string_agg(trace_id, ''), string_agg(span_id, '')
FROM exemplars
WHERE ts >= %(lo)s AND ts < %(hi)s AND series_id = ANY(%(ids)s::int8[])
  AND length(trace_id) = 16 AND length(span_id) = 8;
