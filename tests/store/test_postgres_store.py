"""What only the PostgreSQL backend has: its schema against the SQLAlchemy
description, schema versions (newer refused, compatible accepted, `migrate:
check`), concurrent writers merging exactly, clear connection errors without the
password, the bucket encoding, and partitions detached then dropped."""
import threading

import numpy as np
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchdata import rows_for
from collector.model import NS, HistRows
from collector.store.base import StoreError, StoreUnavailable, WriteBatch
from collector.store.postgres import codec, migrate
from collector.store.postgres.connect import PgSettings
from collector.store.postgres.store import PostgresStore

NOW = 1_800_000_000 * NS


def _sql(dsn, statement, *params):
    with psycopg.connect(dsn, autocommit=True) as con:
        cur = con.execute(statement, params or None)
        return cur.fetchall() if cur.description else None


def test_migrated_schema_matches_the_sqlalchemy_description(pg_dsn):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from collector.store.postgres.schema import metadata

    engine = create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(pg_dsn), poolclass=NullPool)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    # the time partitions are made at run time and are not in the metadata
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name.startswith(("hist_", "samples_")))
            and not (d[0] == "remove_table" and d[1].name == "alembic_version")]
    assert diff == []


def test_empty_database_is_migrated_at_start_and_check_mode_refuses_it(pg_cluster):
    db = pg_cluster.create_database()
    dsn = pg_cluster.dsn(db)
    with pytest.raises(StoreError, match=rf"no Tocsin schema yet; this tocsin needs {migrate.head()}. Run `tocsin db upgrade`"):
        PostgresStore(PgSettings(dsn, migrate="check"))
    results, errors = [], []

    def start():   # two processes starting together: one migrates, the other waits for the lock
        try:
            results.append(PostgresStore(PgSettings(dsn)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 2
    assert _sql(dsn, "SELECT version_num FROM alembic_version") == [(migrate.head(),)]
    for s in results:
        s.close()
    PostgresStore(PgSettings(dsn, migrate="check")).close()   # at head: check mode starts


def test_newer_schema_is_refused_unless_marked_compatible(pg_dsn):
    _sql(pg_dsn, "UPDATE alembic_version SET version_num = '9999'")
    _sql(pg_dsn, "UPDATE meta SET value = '9999' WHERE key = 'schema_oldest_compatible'")
    with pytest.raises(StoreError, match="schema revision 9999, newer than this tocsin understands"):
        PostgresStore(pg_dsn)
    # an expand migration of a newer release: this code still reads and writes
    _sql(pg_dsn, "UPDATE meta SET value = %s WHERE key = 'schema_oldest_compatible'", migrate.head())
    store = PostgresStore(pg_dsn)
    store.write(WriteBatch(wal_segment=3))
    assert store.wal_marker() == 3
    store.close()


def test_unreachable_server_is_one_line_naming_host_and_port_without_the_password(pg_cluster):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"postgresql://tocsin:s3cret-pw@127.0.0.1:{port}/tocsin"
    with pytest.raises(StoreUnavailable) as e:
        PostgresStore(dsn)
    msg = str(e.value)
    assert f"127.0.0.1:{port}/tocsin" in msg and "s3cret-pw" not in msg and "\n" not in msg
    assert "--wait" in msg
    # a wrong password: the message names the cause, not the secret
    _sql(pg_cluster.dsn(), "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tocsin_pw') "
         "THEN CREATE ROLE tocsin_pw LOGIN PASSWORD 'right-one'; END IF; END $$")
    with pytest.raises(StoreUnavailable) as e:
        PostgresStore(f"postgresql://tocsin_pw:wrong-one@127.0.0.1:{pg_cluster.port}/postgres")
    assert "password authentication failed" in str(e.value) and "wrong-one" not in str(e.value)


def test_concurrent_writers_of_the_same_slots_add_up_exactly(pg_dsn):
    """Two writers (replicas) flushing deltas of the same (series, slot) at once:
    merged under row locks, nothing lost or doubled, one row per slot."""
    series, rows = rows_for(NOW, 600, services=4, routes=10)     # 40 series x 60 slots
    stores = [PostgresStore(pg_dsn, writer=w) for w in ("a", "b")]
    stores[0].write(WriteBatch(series=series))
    errors = []

    def flush(store, seed):
        rng = np.random.default_rng(seed)
        try:
            for k in range(6):
                order = rng.permutation(len(rows))
                store.write(WriteBatch(hist=rows.take(np.sort(order[: len(rows) // 2])), wal_segment=k + 1))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=flush, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    expected = np.zeros(len(rows), np.int64)
    for seed in (0, 1):
        rng = np.random.default_rng(seed)
        for _ in range(6):
            expected[np.sort(rng.permutation(len(rows))[: len(rows) // 2])] += 1
    got = stores[0].read_hist(np.array([s.id for s in series], np.uint64), 0, NOW)
    assert len(got) == int((expected > 0).sum())
    assert int(got.count.sum()) == int((rows.count * expected).sum())
    assert [s.wal_marker() for s in stores] == [6, 6]
    assert _sql(pg_dsn, "SELECT count(*) FROM (SELECT 1 FROM latency GROUP BY ts, labels HAVING count(*) > 1) d") \
        == [(0,)]
    for s in stores:
        s.close()


def test_retention_detaches_then_drops_whole_partitions(pg_dsn):
    store = PostgresStore(pg_dsn)
    series, rows = rows_for(NOW, 60)
    store.write(WriteBatch(series=series, hist=rows))
    assert _sql(pg_dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'hist'::regclass")[0][0] >= 1
    done = store.maintain(NOW + 500 * 86400 * NS)
    assert done["dropped_partitions"] >= 3        # 10 s, 1 min and 1 h partitions all expired
    left = _sql(pg_dsn, "SELECT name FROM partitions WHERE end_ts < to_timestamp(%s)", NOW // NS + 86400)
    assert left == []
    assert _sql(pg_dsn, "SELECT count(*) FROM pg_class WHERE relname LIKE 'hist\\_10\\_%%' "
                        "AND relname <= 'hist_10_2027'") == [(0,)]
    store.close()


@given(st.lists(st.tuples(st.integers(0, 70_000), st.integers(1, 2**40)), min_size=0, max_size=30,
                unique_by=lambda t: t[0]), st.integers(0, 3))
def test_bucket_encoding_roundtrips_with_escapes(buckets, empty_rows):
    buckets = sorted(buckets)
    idx = np.array([b[0] for b in buckets], np.int32)
    cnt = np.array([b[1] for b in buckets], np.int64)
    n = 1 + empty_rows
    offsets = np.array([0] + [len(buckets)] * n, np.int64)
    z = np.zeros(n)
    rows = HistRows(np.arange(n, dtype=np.uint64), np.zeros(n, np.int64), np.full(n, 10, np.int32),
                    np.zeros(n, np.int64), z, z, z, offsets, idx, cnt)
    blob, lengths = codec.encode_buckets(rows)
    off, i2, c2 = codec.decode_buckets(blob.tobytes(), lengths)
    assert np.array_equal(off, offsets) and np.array_equal(i2, idx) and np.array_equal(c2, cnt)
    small = (idx < codec.IDX_HIGH).all() and (cnt < 2**32).all()
    assert int(lengths.sum()) == (6 * len(buckets) if small else int(lengths.sum()))


def test_documents_and_other_writes_in_one_transaction(pg_dsn):
    """The seam the cluster builds on: kv functions inside store.transaction() are atomic."""
    from collector.store.postgres import kv

    store = PostgresStore(pg_dsn)
    with store.transaction() as cur:
        kv.put_many(cur, "outbox", {"1": {"n": 1}})
        kv.put_many(cur, "nflog", {"g": {"sent": 1}})
    assert store.kv_get("outbox", "1") == {"n": 1} and store.kv_get("nflog", "g") == {"sent": 1}
    with pytest.raises(RuntimeError):
        with store.transaction() as cur:
            kv.delete(cur, "outbox", "1")
            raise RuntimeError("the claim's epoch check failed")
    assert store.kv_get("outbox", "1") == {"n": 1}     # rolled back whole
    store.close()


def test_a_read_past_its_deadline_is_cancelled_on_the_server(pg_dsn):
    """A query's token stops a PostgreSQL read in progress (issue 16): here the read
    waits on a lock another session holds; at the deadline the watchdog sends
    PostgreSQL's cancel request and the read ends at once."""
    import time

    from collector import cancel

    store = PostgresStore(pg_dsn)
    series, rows = rows_for(NOW, 600)
    store.write(WriteBatch(series=series, hist=rows))
    ids = np.array([s.id for s in series], np.uint64)
    locker = psycopg.connect(pg_dsn)
    try:
        locker.execute("LOCK TABLE hist IN ACCESS EXCLUSIVE MODE")   # readers now wait
        token = cancel.Token(timeout_s=0.5)
        t0 = time.monotonic()
        with cancel.running(token), pytest.raises(cancel.Cancelled):
            store.read_hist(ids, NOW - 600 * NS, NOW)
        took = time.monotonic() - t0
    finally:
        locker.rollback()
        locker.close()
    assert took < 5, f"the read went on {took:.1f}s past a 0.5 s deadline"
    assert len(store.read_hist(ids, NOW - 600 * NS, NOW)) == len(rows)   # the pool's connection still works
    store.close()
