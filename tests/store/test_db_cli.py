"""`tocsin db upgrade [--sql] | current | history | copy --from FILE`, run as a user
would (the real command in a subprocess) against a real PostgreSQL."""
import os
import subprocess
import sys

import numpy as np
import psycopg

from benchdata import rows_for
from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.model import NS, SeriesCatalog, make_labels
from collector.store.base import Retention, WriteBatch
from collector.store.duckdb_store import DuckDBStore
from collector.store.postgres import migrate
from collector.store.postgres.store import PostgresStore
from serverproc import REPO

DAY = 86_400
NOW = 1_800_000_000 * NS


def tocsin(*args, dsn: str | None = None, cwd=None, env_extra: dict | None = None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_")}
    if dsn is not None:
        env.update({"TOCSIN_STORAGE__POSTGRESQL__DSN_ENV": "TEST_PG_DSN", "TEST_PG_DSN": dsn})
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "collector", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or REPO, timeout=300)


def test_upgrade_current_history_on_an_empty_database(pg_cluster, tmp_path):
    dsn = pg_cluster.dsn(pg_cluster.create_database())
    r = tocsin("db", "current", dsn=dsn, cwd=tmp_path)
    assert r.returncode == 0 and "no Tocsin schema yet (run `tocsin db upgrade`)" in r.stdout, r.stderr

    r = tocsin("db", "upgrade", "--sql", dsn=dsn, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "CREATE TABLE hist" in r.stdout and "PARTITION BY RANGE (res, ts)" in r.stdout
    assert "CREATE VIEW latency" in r.stdout and "SET lock_timeout" in r.stdout
    assert "no Tocsin schema yet" in tocsin("db", "current", dsn=dsn, cwd=tmp_path).stdout   # --sql ran nothing

    r = tocsin("db", "upgrade", dsn=dsn, cwd=tmp_path)
    assert r.returncode == 0 and f"upgraded from an empty database to {migrate.head()}" in r.stdout, r.stderr
    assert tocsin("db", "current", dsn=dsn, cwd=tmp_path).stdout.strip() == f"{migrate.head()} (head)"
    r = tocsin("db", "upgrade", dsn=dsn, cwd=tmp_path)
    assert r.returncode == 0 and "already at" in r.stdout
    assert tocsin("db", "upgrade", "--sql", dsn=dsn, cwd=tmp_path).stdout.count("CREATE TABLE") == 0

    r = tocsin("db", "history", cwd=tmp_path)
    assert r.returncode == 0 and f"<base> -> 0001{' (head)' if migrate.head() == '0001' else ''}, Initial schema" \
        in r.stdout


def test_errors_are_one_line(tmp_path):
    r = tocsin("db", "current", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "storage.postgresql.dsn: set dsn_env (an environment variable) or dsn_file (a file)" in r.stderr
    r = tocsin("db", "current", dsn="host=127.0.0.1 port=1 dbname=x user=u password=hunter2", cwd=tmp_path)
    assert r.returncode == 1 and "cannot connect to PostgreSQL at 127.0.0.1:1/x" in r.stderr
    assert "hunter2" not in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def _duckdb_file(path) -> tuple[DuckDBStore, list]:
    """A DuckDB store as a service leaves it: 10 s rows, rollups, samples, documents."""
    store = DuckDBStore(str(path), Retention(by_res={10: 2 * DAY, 60: 30 * DAY, 3600: 400 * DAY}, samples=30 * DAY,
                                             rollup_after=120))
    series, rows = rows_for(NOW, 3 * 3600)
    store.write(WriteBatch(series=series, hist=rows))
    cat = SeriesCatalog()
    agg = Aggregator(cat, AggregatorSettings(), clock=lambda: NOW)
    agg.record_samples("up", "gauge", [make_labels({"job": "a"})], np.zeros(3, np.int64),
                       NOW - np.array([30, 20, 10]) * NS, np.array([1.0, 0.0, 1.0]))
    bounds = (0.1, 1.0)
    agg.record_custom("rpc_duration_seconds", make_labels({"job": "a"}), NOW - 20 * NS, bounds, np.array([1, 2, 3]),
                      3.5)
    # exemplars of that histogram: two in one octave (the slower stays), one in another
    agg.record_exemplars("rpc_duration_seconds", make_labels({"job": "a"}), NOW - 20 * NS,
                         np.array([0.3, 0.35, 2.0]), NOW - np.array([21, 22, 23]) * NS,
                         np.array([[i + 1] * 24 for i in range(3)], np.uint8))
    store.write(agg.take_closed(force=True))
    store.maintain(NOW)
    store.kv_put_many("silences", {"s1": {"id": "s1", "matchers": ["a=b"]}})
    store.kv_put_many("alert_state", {"k1": {"state": "firing"}, "k2": {"state": "pending"}})
    store.kv_put_many("nflog", {"n1": {"sent": 1}})
    return store, series + cat.all()


def test_copy_moves_everything_with_a_count_check_and_is_idempotent(pg_dsn, tmp_path):
    path = tmp_path / "old.duckdb"
    duck, series = _duckdb_file(path)
    ids = np.array(sorted(s.id for s in series), np.uint64)
    expect = duck.read_hist(ids, 0, NOW + DAY * NS)
    expect_coarse = duck.read_hist(ids, 0, NOW + DAY * NS, coarsest_res=60)
    expect_samples = duck.read_samples(ids, 0, NOW)
    duck.close()

    for run in range(2):                              # the second run changes nothing
        r = tocsin("db", "copy", "--from", str(path), dsn=pg_dsn, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "count check passed" in r.stdout and "MISMATCH" not in r.stdout
        assert "observations at 60 s" in r.stdout and "documents in silences" in r.stdout
        assert "exemplars" in r.stdout

    pg = PostgresStore(pg_dsn)
    try:
        got = pg.read_hist(ids, 0, NOW + DAY * NS)
        assert sorted(zip(got.series_id.tolist(), got.ts.tolist(), got.count.tolist())) == \
            sorted(zip(expect.series_id.tolist(), expect.ts.tolist(), expect.count.tolist()))
        assert int(got.cnt.sum()) == int(expect.cnt.sum()) and got.bounds and (0.1, 1.0) in got.bounds
        coarse = pg.read_hist(ids, 0, NOW + DAY * NS, coarsest_res=60)
        assert set(coarse.res.tolist()) == set(expect_coarse.res.tolist()) and 60 in coarse.res
        assert int(coarse.count.sum()) == int(expect_coarse.count.sum())
        s = pg.read_samples(ids, 0, NOW)
        assert s.value.tolist() == expect_samples.value.tolist()
        assert pg.kv_list("alert_state") == {"k1": {"state": "firing"}, "k2": {"state": "pending"}}
        assert pg.kv_get("silences", "s1") == {"id": "s1", "matchers": ["a=b"]}
        assert {x.id for x in pg.load_series()} == {x.id for x in series}
        ex = pg.read_exemplars(ids, 0, NOW)
        assert sorted(ex.value.tolist()) == [0.35, 2.0] and sorted(ex.trace_id[:, 0].tolist()) == [2, 3]
    finally:
        pg.close()
    with psycopg.connect(pg_dsn) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'rollup_60'").fetchone() is not None


def test_copy_refuses_a_file_in_use_and_a_missing_one(pg_dsn, tmp_path):
    r = tocsin("db", "copy", "--from", str(tmp_path / "nope.duckdb"), dsn=pg_dsn, cwd=tmp_path)
    assert r.returncode == 1 and "no such DuckDB file" in r.stderr
    store = DuckDBStore(str(tmp_path / "busy.duckdb"))
    try:
        r = tocsin("db", "copy", "--from", str(tmp_path / "busy.duckdb"), dsn=pg_dsn, cwd=tmp_path)
        assert r.returncode == 1 and "Stop the tocsin using it first" in r.stderr and "Traceback" not in r.stderr
    finally:
        store.close()
