-- The cluster's coordination (docs/cluster.md): heartbeat rows, the leader's
-- advisory lock and fencing epoch, flush watermarks, new series. Loaded by
-- cluster.py; times that replicas compare are PostgreSQL's clock_timestamp(),
-- so the replicas' own clocks never have to agree.

-- name: heartbeat
-- flushed_age: seconds since this replica took the batch of its last stored flush
-- (NULL: nothing stored yet); converted to the server's clock here.
INSERT INTO cluster_replicas AS r (replica, instance, started_at, heartbeat_at, flushed_through, address, version,
                                   conditions)
VALUES (%(replica)s, %(instance)s, clock_timestamp(), clock_timestamp(),
        clock_timestamp() - make_interval(secs => %(flushed_age)s), %(address)s, %(version)s, %(conditions)s)
ON CONFLICT (replica) DO UPDATE SET
    heartbeat_at = excluded.heartbeat_at,
    flushed_through = CASE WHEN excluded.flushed_through IS NULL THEN r.flushed_through
                           WHEN r.instance <> excluded.instance THEN excluded.flushed_through
                           ELSE greatest(r.flushed_through, excluded.flushed_through) END,
    started_at = CASE WHEN r.instance = excluded.instance THEN r.started_at ELSE excluded.started_at END,
    instance = excluded.instance, address = excluded.address, version = excluded.version,
    conditions = excluded.conditions;

-- name: leave
DELETE FROM cluster_replicas WHERE replica = %(replica)s AND instance = %(instance)s;

-- name: replicas
-- Every heartbeat row with its age and flush lag in seconds (server clock), and the leader row.
SELECT r.replica, r.instance, r.address, r.version, r.conditions,
       extract(epoch FROM r.started_at)::float8, extract(epoch FROM r.heartbeat_at)::float8,
       extract(epoch FROM r.flushed_through)::float8,
       extract(epoch FROM clock_timestamp() - r.heartbeat_at)::float8 AS heartbeat_age,
       extract(epoch FROM clock_timestamp() - r.flushed_through)::float8 AS flush_lag
FROM cluster_replicas r ORDER BY r.replica;

-- name: leader
SELECT epoch, coalesce(replica, ''), extract(epoch FROM since)::float8,
       extract(epoch FROM clock_timestamp() - since)::float8
FROM cluster_leader WHERE id = 1;

-- name: watermark_lag
-- How far behind the server's clock the slowest live replica's flush watermark is
-- (seconds; NULL when a live replica has stored nothing yet), and how many are live.
SELECT max(CASE WHEN flushed_through IS NULL THEN 'infinity'::float8
                ELSE extract(epoch FROM clock_timestamp() - flushed_through)::float8 END),
       count(*)
FROM cluster_replicas WHERE heartbeat_at > clock_timestamp() - make_interval(secs => %(live_within)s);

-- name: prune
-- Rows of replicas gone for long (killed and never restarted): kept an hour so
-- their absence can be alerted on (TocsinReplicaDown), then forgotten.
DELETE FROM cluster_replicas WHERE heartbeat_at < clock_timestamp() - make_interval(secs => %(older_than)s);

-- name: replica_lock
-- Held on the listener connection: a second live process with this replica id is refused.
SELECT pg_try_advisory_lock(%(space)s, hashtext(%(replica)s));

-- name: try_leader_lock
SELECT pg_try_advisory_lock(%(key)s);

-- name: leader_session_settings
-- The server ends this session when it has been idle this long (a frozen or cut-off
-- leader), which releases the lock; keepalives find a dead network sooner.
SELECT set_config('idle_session_timeout', %(idle_ms)s, false),
       set_config('tcp_keepalives_idle', %(ka_idle)s, false),
       set_config('tcp_keepalives_interval', %(ka_interval)s, false),
       set_config('tcp_keepalives_count', '3', false),
       set_config('statement_timeout', %(statement_ms)s, false),
       set_config('application_name', %(application_name)s, false);

-- name: take_over
-- In the transaction that follows taking the lock: the new epoch is the fencing token.
UPDATE cluster_leader SET epoch = epoch + 1, replica = %(replica)s, since = clock_timestamp()
WHERE id = 1 RETURNING epoch;

-- name: confirm
SELECT epoch, replica FROM cluster_leader WHERE id = 1;

-- name: release_leader_lock
SELECT pg_advisory_unlock(%(key)s);

-- name: fence
-- First statement of every fenced transaction. FOR SHARE: a takeover's UPDATE
-- waits until this transaction ends, so the new leader reads what the old one
-- committed, and a transaction that starts after the takeover sees the new epoch.
SELECT epoch FROM cluster_leader WHERE id = 1 FOR SHARE;

-- name: peek_epoch
SELECT epoch FROM cluster_leader WHERE id = 1;

-- name: xmin
-- Every transaction with an id below this has ended: its rows are visible now.
SELECT txid_snapshot_xmin(txid_current_snapshot());

-- name: series_since
-- Series created by transactions at or after %(xmin)s (some may be read twice:
-- the caller ignores series it knows), and the new xmin for the next call, both
-- from one snapshot.
SELECT s.series_id, s.metric, s.labels, s.kind, s.unit, s.help, x.xmin
FROM (SELECT txid_snapshot_xmin(txid_current_snapshot()) AS xmin) x
LEFT JOIN series s ON s.txid >= %(xmin)s;
