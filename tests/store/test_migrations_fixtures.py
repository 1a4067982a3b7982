"""Upgrade safety: store files written by earlier (and the current) schema versions, kept in
tests/store/fixtures/, open with the current code, migrate, and read back what was written;
a file from a newer version is refused, untouched, with a clear message."""
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import duckdb
from collector.model import NS, ExemplarRows, make_labels, series_id
from collector.store.base import StoreError, WriteBatch
from collector.store.duckdb_store import DuckDBStore
from collector.store.migrations import MIGRATIONS, SCHEMA_VERSION

FIXTURES = Path(__file__).resolve().parent / "fixtures"
VERSIONS = sorted(int(re.match(r"schema_v(\d+)\.duckdb\.gz$", p.name).group(1))
                  for p in FIXTURES.glob("schema_v*.duckdb.gz"))
FAR = 2**62


def _copy(version: int, tmp_path: Path) -> Path:
    dest = tmp_path / f"v{version}.duckdb"
    dest.write_bytes(gzip.decompress((FIXTURES / f"schema_v{version}.duckdb.gz").read_bytes()))
    return dest


def _expected(version: int) -> dict:
    return json.loads((FIXTURES / f"schema_v{version}.expected.json").read_text())


def test_every_released_migration_step_exists():
    assert sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))
    assert all(callable(step) for step in MIGRATIONS.values())


def test_there_is_a_fixture_for_every_schema_a_user_may_upgrade_from():
    assert VERSIONS, "no fixtures in tests/store/fixtures"
    missing = set(range(1, SCHEMA_VERSION)) - set(VERSIONS)
    assert not missing, f"no fixture for schema versions {sorted(missing)}: keep the old make_vN.py output"
    assert max(VERSIONS) <= SCHEMA_VERSION
    for v in VERSIONS:
        assert (FIXTURES / f"make_v{v}.py").is_file() and (FIXTURES / f"schema_v{v}.expected.json").is_file()
        assert (FIXTURES / f"schema_v{v}.duckdb.gz").stat().st_size < 1_000_000


@pytest.mark.parametrize("version", VERSIONS)
def test_fixture_opens_migrates_and_reads_back(version, tmp_path):
    exp = _expected(version)
    assert exp["schema_version"] == version
    path = _copy(version, tmp_path)
    store = DuckDBStore(str(path))
    try:
        assert store.schema_version() == SCHEMA_VERSION

        # histograms: every resolution holds the same observations; read_hist picks the finest
        ids = np.array([series_id(s["metric"], make_labels(s["labels"])) for s in exp["series"]], np.uint64)
        known = {s.id: s for s in store.load_series()}
        assert set(ids.tolist()) <= set(known)
        rows = store.read_hist(ids, 0, FAR)
        for sid, s in zip(ids.tolist(), exp["series"]):
            sel = rows.series_id == sid
            assert int(rows.count[sel].sum()) == s["count"], s["labels"]
            assert float(rows.sum[sel].sum()) == pytest.approx(s["sum"], rel=1e-9)
            assert known[sid].metric == s["metric"] and dict(known[sid].labels) == s["labels"]

        # the public `latency` view
        view = store._con.sql("SELECT resolution, count(*), sum(count) FROM latency GROUP BY ALL ORDER BY 1").fetchall()
        assert [{"resolution_s": int(r.total_seconds()), "rows": int(n), "count": int(c)} for r, n, c in view] \
            == exp["latency_view"]
        p95 = store._con.sql("SELECT min(p95), max(p95) FROM latency").fetchall()[0]
        assert 0 < p95[0] <= p95[1] < 60

        # float samples: the last value of each counter
        calls = np.array([series_id("traces_span_metrics_calls_total", make_labels(c["labels"]))
                          for c in exp["calls_last"]], np.uint64)
        samples = store.read_samples(calls, 0, FAR)
        for sid, c in zip(calls.tolist(), exp["calls_last"]):
            sel = samples.series_id == sid
            assert sel.any() and samples.value[sel][np.argmax(samples.ts[sel])] == c["value"]

        # key-value documents (alert state, silences, notification log)
        for item in exp["kv"]:
            assert store.kv_get(item["namespace"], item["key"]) == item["value"]

        # and the migrated file takes new writes like a fresh one, exemplars included (schema 3)
        store.kv_put("alerts", "after-upgrade", {"ok": True})
        slot = (exp["t0"] + 600) * NS
        store.write(WriteBatch(exemplars=_exemplars(ids[0], slot)))
        got = store.read_exemplars(ids[:1], slot, slot + 10 * NS)
        assert got.value.tolist() == [0.25] and bytes(got.trace_id[0]).hex() == "ab" * 16
        assert store._con.sql("SELECT trace_id, value FROM latency_exemplars").fetchall() == [("ab" * 16, 0.25)]
        assert store.maintain((exp["t0"] + 3 * 3600) * NS)["dropped_partitions"] == 0
    finally:
        store.close()
    reopened = DuckDBStore(str(path))
    try:
        assert reopened.kv_get("alerts", "after-upgrade") == {"ok": True}
    finally:
        reopened.close()


def _exemplars(sid: int, slot_ns: int) -> ExemplarRows:
    return ExemplarRows(np.array([sid, sid], np.uint64), np.array([slot_ns, slot_ns]), np.array([9, 9], np.int16),
                        np.array([slot_ns + 1000, slot_ns + 2000]), np.array([0.2, 0.25]),
                        np.full((2, 16), 0xAB, np.uint8), np.full((2, 8), 0xCD, np.uint8))


def _schema(con) -> dict:
    cols = con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                       "WHERE table_name IN ('meta', 'series', 'partitions', 'kv', 'hist_empty', 'samples_empty', "
                       "'exemplars_empty', 'latency', 'latency_exemplars') "
                       "ORDER BY table_name, ordinal_position").fetchall()
    out: dict = {}
    for table, col, typ in cols:
        out.setdefault(table, []).append((col, typ))
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_a_migrated_file_has_the_schema_of_a_fresh_one(version, tmp_path):
    DuckDBStore(str(tmp_path / "fresh.duckdb")).close()
    DuckDBStore(str(_copy(version, tmp_path))).close()
    fresh = duckdb.connect(str(tmp_path / "fresh.duckdb"), read_only=True)
    old = duckdb.connect(str(tmp_path / f"v{version}.duckdb"), read_only=True)
    try:
        assert _schema(old) == _schema(fresh)
    finally:
        fresh.close()
        old.close()


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    path = _copy(max(VERSIONS), tmp_path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    con.close()
    before = path.read_bytes()
    with pytest.raises(StoreError) as e:
        DuckDBStore(str(path))
    msg = str(e.value)
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this tocsin understands ({SCHEMA_VERSION})" in msg
    assert "run a newer tocsin or restore a backup" in msg and str(path) in msg
    # the refusal closed its connection: the file can be opened again right away
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == \
            [(str(SCHEMA_VERSION + 1),)]
    finally:
        con.close()
    assert len(path.read_bytes()) == len(before)


def test_serve_refuses_a_newer_file_with_the_message(tmp_path):
    """The same refusal through `tocsin serve`: exit 2, the message on stderr, no traceback."""
    path = _copy(max(VERSIONS), tmp_path)
    con = duckdb.connect(str(path))
    con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    (tmp_path / "tocsin.yaml").write_text("rules: {files: []}\n")
    env = {"TOCSIN_STORAGE__PATH": str(path), "TOCSIN_API__LISTEN": "127.0.0.1:0",
           "TOCSIN_RECEIVERS__OTLP__GRPC__LISTEN": "127.0.0.1:0", "TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": "127.0.0.1:0"}
    r = subprocess.run([sys.executable, "-m", "collector", "serve", "--config", str(tmp_path / "tocsin.yaml")],
                       cwd=tmp_path, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "schema version 999, newer than this tocsin" in r.stderr and "Traceback" not in r.stderr
