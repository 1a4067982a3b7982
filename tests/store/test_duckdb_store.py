"""The DuckDB store on real files: writes, merges, rollups, retention, migrations."""
import numpy as np
import pytest

from collector.aggregate import hdr
from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.model import NS, SeriesCatalog, make_labels
from collector.query.source import LiveSource
from collector.store.base import StoreError
from collector.store.duckdb_store import DAY, DuckDBStore

NOW = 1_800_000_000 * NS  # fixed clock, aligned to an hour


def _setup(tmp_path, now=NOW):
    store = DuckDBStore(str(tmp_path / "t.duckdb"))
    cat = SeriesCatalog()
    agg = Aggregator(cat, clock=lambda: now)
    return store, cat, agg


def _ids(cat):
    return np.array([s.id for s in cat.all()], np.uint64)


def test_write_read_and_latency_view_quantiles(tmp_path):
    store, cat, agg = _setup(tmp_path)
    rng = np.random.default_rng(7)
    x = rng.lognormal(-2, 1, 20_000)
    agg.record_durations("traces_span_metrics_duration_seconds", [make_labels({"service_name": "checkout"})],
                         np.zeros(len(x), np.int64), np.full(len(x), NOW - 30 * NS), x)
    store.write(agg.take_closed())
    rows = store.read_hist(_ids(cat), 0, NOW)
    assert len(rows) == 1 and int(rows.count[0]) == len(x)
    assert rows.sum[0] == pytest.approx(x.sum())
    view = store._con.sql("SELECT metric, labels, count, p50, p95, p99, resolution FROM latency").fetchall()
    metric, labels, count, p50, p95, p99, res = view[0]
    assert metric == "traces_span_metrics_duration_seconds" and labels == {"service_name": "checkout"}
    assert count == len(x) and res.total_seconds() == 10
    exact = np.percentile(x, [50, 95, 99], method="inverted_cdf")
    assert np.allclose([p50, p95, p99], exact, rtol=0.01)


def test_late_rows_merge_into_their_slot(tmp_path):
    store, cat, agg = _setup(tmp_path)
    ls = [make_labels({"service_name": "a"})]
    agg.record_durations("m", ls, np.zeros(3, np.int64), np.full(3, NOW - 60 * NS), np.array([0.1, 0.2, 0.3]))
    store.write(agg.take_closed())
    agg.record_durations("m", ls, np.zeros(2, np.int64), np.full(2, NOW - 60 * NS), np.array([0.4, 0.5]))
    store.write(agg.take_closed())
    rows = store.read_hist(_ids(cat), 0, NOW)
    assert len(rows) == 1 and int(rows.count[0]) == 5
    assert rows.min[0] == pytest.approx(0.1) and rows.max[0] == pytest.approx(0.5)
    assert store._con.sql("SELECT count(*) FROM latency").fetchall()[0][0] == 1


def test_read_your_writes_merges_memory_and_disk(tmp_path):
    store, cat, agg = _setup(tmp_path)
    ls = [make_labels({"service_name": "a"})]
    agg.record_durations("m", ls, np.zeros(3, np.int64), np.full(3, NOW - 60 * NS), np.ones(3))
    store.write(agg.take_closed())
    agg.record_durations("m", ls, np.zeros(4, np.int64), np.full(4, NOW - 60 * NS), np.ones(4))  # not flushed
    rows = LiveSource(store, agg).read_hist(_ids(cat), 0, NOW)
    assert len(rows) == 1 and int(rows.count[0]) == 7


def test_rollup_is_exact_and_retention_drops_partitions(tmp_path):
    store, cat, agg = _setup(tmp_path)
    ls = [make_labels({"service_name": "a"})]
    rng = np.random.default_rng(1)
    x = rng.lognormal(-3, 1, 6000)
    ends = NOW - 3600 * NS + rng.integers(0, 3000, len(x)) * NS
    agg2 = Aggregator(cat, AggregatorSettings(lateness_seconds=7200), clock=lambda: NOW)
    agg2.record_durations("m", ls, np.zeros(len(x), np.int64), ends, x)
    store.write(agg2.take_closed())
    fine = store.read_hist(_ids(cat), 0, NOW)
    assert int(fine.count.sum()) == len(x) and set(fine.res.tolist()) == {10}

    done = store.maintain(NOW + 3 * DAY * NS)  # past the 2-day raw retention
    assert done["rolled_up_rows"] > 0 and done["dropped_partitions"] >= 1
    coarse = store.read_hist(_ids(cat), 0, NOW + 3 * DAY * NS)
    assert int(coarse.count.sum()) == len(x)
    assert set(coarse.res.tolist()) <= {60, 3600}
    # merged buckets are exactly the union: quantiles of the merged rows equal the fine ones
    allf = hdr.merge(fine.idx, fine.cnt)
    allc = hdr.merge(coarse.idx, coarse.cnt)
    assert np.array_equal(allf[0], allc[0]) and np.array_equal(allf[1], allc[1])
    # a second maintain does not roll up twice
    store.maintain(NOW + 3 * DAY * NS)
    assert int(store.read_hist(_ids(cat), 0, NOW + 3 * DAY * NS).count.sum()) == len(x)


def test_samples_roundtrip_sorted(tmp_path):
    store, cat, agg = _setup(tmp_path)
    ls = [make_labels({"job": "a"}), make_labels({"job": "b"})]
    agg.record_samples("up", "gauge", ls, np.array([1, 0, 1, 0]), np.array([NOW - 3, NOW - 4, NOW - 1, NOW - 2]),
                       np.array([1.0, 2.0, 3.0, 4.0]))
    store.write(agg.take_closed())
    s = store.read_samples(_ids(cat), 0, NOW)
    assert len(s) == 4
    order = np.lexsort((s.ts, s.series_id))
    assert np.array_equal(order, np.arange(4))


def test_series_and_kv_survive_reopen(tmp_path):
    store, cat, agg = _setup(tmp_path)
    agg.record_durations("m", [make_labels({"a": "1"})], np.zeros(1, np.int64), np.array([NOW - NS]), np.ones(1))
    store.write(agg.take_closed(force=True))
    store.kv_put("alert_state", "k", {"state": "firing"})
    store.close()
    again = DuckDBStore(str(tmp_path / "t.duckdb"))
    assert [s.labels for s in again.load_series()] == [(("a", "1"),)]
    assert again.kv_get("alert_state", "k") == {"state": "firing"}
    assert again.kv_list("nothing") == {}


def test_newer_schema_is_refused_with_a_clear_message(tmp_path):
    store = DuckDBStore(str(tmp_path / "t.duckdb"))
    store._con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(StoreError, match="schema version 999, newer than this tocsin"):
        DuckDBStore(str(tmp_path / "t.duckdb"))
