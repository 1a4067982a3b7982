"""What collector/store/base.py promises, on both backends (DuckDB file and a real
PostgreSQL): writes, merges, read-your-writes, rollups, retention, samples,
series and documents across a restart, WAL markers per writer, read windows."""
import numpy as np
import pytest

from backends import both_backends, latency_rows
from benchdata import rows_for
from collector.aggregate import hdr
from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.model import NS, HistRows, SeriesCatalog, make_labels
from collector.query.source import LiveSource
from collector.store.base import Retention, WriteBatch

NOW = 1_800_000_000 * NS  # fixed clock, aligned to an hour
DAY = 86_400
pytestmark = both_backends


def _agg(cat, now=NOW, **settings):
    return Aggregator(cat, AggregatorSettings(**settings), clock=lambda: now)


def _ids(cat):
    return np.array([s.id for s in cat.all()], np.uint64)


def test_write_read_and_latency_view_quantiles(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = _agg(cat)
    x = np.random.default_rng(7).lognormal(-2, 1, 20_000)
    agg.record_durations("traces_span_metrics_duration_seconds", [make_labels({"service_name": "checkout"})],
                         np.zeros(len(x), np.int64), np.full(len(x), NOW - 30 * NS), x)
    store.write(agg.take_closed())
    rows = store.read_hist(_ids(cat), 0, NOW)
    assert len(rows) == 1 and int(rows.count[0]) == len(x)
    assert rows.sum[0] == pytest.approx(x.sum())
    ((metric, labels, count, p50, p90, p95, p99, res, total),) = latency_rows(store)
    assert metric == "traces_span_metrics_duration_seconds" and labels == {"service_name": "checkout"}
    assert count == len(x) and res.total_seconds() == 10 and total == pytest.approx(x.sum())
    exact = np.percentile(x, [50, 90, 95, 99], method="inverted_cdf")
    assert np.allclose([p50, p90, p95, p99], exact, rtol=0.01)


def test_late_rows_and_repeated_flushes_merge_into_their_slot(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = _agg(cat)
    ls = [make_labels({"service_name": "a"})]
    agg.record_durations("m", ls, np.zeros(3, np.int64), np.full(3, NOW - 60 * NS), np.array([0.1, 0.2, 0.3]))
    store.write(agg.take_closed())
    for extra in ([0.4, 0.5], [0.05]):
        agg.record_durations("m", ls, np.zeros(len(extra), np.int64), np.full(len(extra), NOW - 60 * NS),
                             np.array(extra))
        store.write(agg.take_closed())
    rows = store.read_hist(_ids(cat), 0, NOW)
    assert len(rows) == 1 and int(rows.count[0]) == 6
    assert rows.min[0] == pytest.approx(0.05) and rows.max[0] == pytest.approx(0.5)
    assert int(rows.cnt.sum()) == 6
    ((count, p50),) = latency_rows(store, columns="count, p50")
    assert count == 6 and p50 == pytest.approx(0.2, rel=0.01)   # the view's quantiles are of the merged row


def test_read_your_writes_merges_memory_and_disk(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = _agg(cat)
    ls = [make_labels({"service_name": "a"})]
    agg.record_durations("m", ls, np.zeros(3, np.int64), np.full(3, NOW - 60 * NS), np.ones(3))
    store.write(agg.take_closed())
    agg.record_durations("m", ls, np.zeros(4, np.int64), np.full(4, NOW - 60 * NS), np.ones(4))  # not flushed
    rows = LiveSource(store, agg).read_hist(_ids(cat), 0, NOW)
    assert len(rows) == 1 and int(rows.count[0]) == 7


def test_custom_bucket_rows_roundtrip(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = _agg(cat)
    bounds = (0.1, 0.5, 1.0)
    agg.record_custom("http_server_request_duration_seconds", make_labels({"job": "a"}), NOW - 20 * NS, bounds,
                      np.array([5, 0, 3, 1]), 4.2)
    store.write(agg.take_closed())
    rows = store.read_hist(_ids(cat), 0, NOW)
    assert len(rows) == 1 and rows.bounds == (bounds,)
    assert {i: c for i, c in zip(rows.idx.tolist(), rows.cnt.tolist()) if c} == {0: 5, 2: 3, 3: 1}
    assert rows.sum[0] == pytest.approx(4.2)


def test_rollup_is_exact_and_retention_drops_partitions(make_store):
    store, cat = make_store(), SeriesCatalog()
    ls = [make_labels({"service_name": "a"})]
    rng = np.random.default_rng(1)
    x = rng.lognormal(-3, 1, 6000)
    ends = NOW - 3600 * NS + rng.integers(0, 3000, len(x)) * NS
    agg = _agg(cat, lateness_seconds=7200)
    agg.record_durations("m", ls, np.zeros(len(x), np.int64), ends, x)
    store.write(agg.take_closed())
    fine = store.read_hist(_ids(cat), 0, NOW)
    assert int(fine.count.sum()) == len(x) and set(fine.res.tolist()) == {10}

    done = store.maintain(NOW + 3 * DAY * NS)  # past the 2-day raw retention
    assert done["rolled_up_rows"] > 0 and done["dropped_partitions"] >= 1
    coarse = store.read_hist(_ids(cat), 0, NOW + 3 * DAY * NS)
    assert int(coarse.count.sum()) == len(x)
    assert set(coarse.res.tolist()) <= {60, 3600}
    allf = hdr.merge(fine.idx, fine.cnt)
    allc = hdr.merge(coarse.idx, coarse.cnt)
    assert np.array_equal(allf[0], allc[0]) and np.array_equal(allf[1], allc[1])
    store.maintain(NOW + 3 * DAY * NS)   # a second maintain does not roll up twice
    assert int(store.read_hist(_ids(cat), 0, NOW + 3 * DAY * NS).count.sum()) == len(x)


def test_samples_roundtrip_sorted(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = _agg(cat)
    ls = [make_labels({"job": "a"}), make_labels({"job": "b"})]
    agg.record_samples("up", "gauge", ls, np.array([1, 0, 1, 0]), NOW - np.array([3, 4, 1, 2]) * NS,
                       np.array([1.0, 2.0, 3.0, 4.0]))
    store.write(agg.take_closed())
    s = store.read_samples(_ids(cat), 0, NOW)
    assert len(s) == 4
    assert np.array_equal(np.lexsort((s.ts, s.series_id)), np.arange(4))
    assert sorted(s.value.tolist()) == [1.0, 2.0, 3.0, 4.0]
    assert len(store.read_samples(_ids(cat), NOW - 2 * NS, NOW - 2 * NS)) == 1   # bounds are inclusive


def test_series_and_documents_survive_reopen(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = _agg(cat)
    agg.record_durations("m", [make_labels({"a": "1"})], np.zeros(1, np.int64), np.array([NOW - NS]), np.ones(1))
    store.write(agg.take_closed(force=True))
    store.kv_put("alert_state", "k", {"state": "firing", "n": [1, 2]})
    store.kv_put_many("outbox", {"1": {"x": 1}, "2": {"x": 2}})
    store.kv_delete("outbox", "1")
    again = make_store()
    assert [s.labels for s in again.load_series()] == [(("a", "1"),)]
    assert [s.id for s in again.load_series()] == [s.id for s in cat.all()]
    assert again.kv_get("alert_state", "k") == {"state": "firing", "n": [1, 2]}
    assert again.kv_list("outbox") == {"2": {"x": 2}}
    assert again.kv_list("nothing") == {} and again.kv_get("outbox", "1") is None


def test_wal_markers_are_per_writer_and_written_with_the_data(make_store):
    store = make_store()
    assert store.wal_marker() == 0
    store.write(WriteBatch(wal_segment=7, wal_markers={"worker-1": 3}))
    assert store.wal_marker() == 7 and store.wal_marker("worker-1") == 3
    other = make_store(writer="replica-b")
    assert other.wal_marker() == 0 and other.wal_marker("worker-1") == 0
    other.write(WriteBatch(wal_segment=2))
    assert other.wal_marker() == 2
    assert make_store().wal_marker() == 7       # the default writer's marker is untouched


def test_min_end_leaves_out_exactly_the_rows_ending_before(make_store):
    end_s = 1_800_000_000 // DAY * DAY + 300          # five minutes into a day
    store = make_store(Retention(by_res={10: 240, 60: 30 * DAY, 3600: 400 * DAY}, samples=30 * DAY))
    series, rows = rows_for(end_s * NS, 1800)
    store.write(WriteBatch(series=series, hist=rows))
    store.maintain(end_s * NS)                        # older slots now come back as 60 s rows
    ids = np.array(sorted(s.id for s in series), np.uint64)
    lo, hi = (end_s - 3600) * NS, end_s * NS
    full = store.read_hist(ids, lo, hi)
    assert set(full.res.tolist()) == {10, 60}
    ends = full.ts + full.res.astype(np.int64) * NS
    for back in (30, 200, 400, 1000):
        min_end = (end_s - back) * NS
        got = store.read_hist(ids, lo, hi, min_end_ns=min_end)
        keep = ends > min_end
        assert sorted(zip(got.series_id.tolist(), got.ts.tolist())) == \
            sorted(zip(full.series_id[keep].tolist(), full.ts[keep].tolist()))
        assert int(got.count.sum()) == int(full.count[keep].sum())


def test_reads_return_one_row_per_series_and_slot(make_store):
    """Many flushes of overlapping slots (as with the WAL on): still one row each,
    counts exactly the sum of what was written."""
    store = make_store()
    series, rows = rows_for(NOW, 300)
    for part in np.array_split(np.arange(len(rows)), 4):
        store.write(WriteBatch(series=series, hist=rows.take(part)))
        store.write(WriteBatch(hist=rows.take(part[::2])))        # the same slots again
    ids = np.array([s.id for s in series], np.uint64)
    got = store.read_hist(ids, 0, NOW)
    keys = list(zip(got.series_id.tolist(), got.ts.tolist()))
    assert len(keys) == len(set(keys)) == len(rows)
    twice = np.zeros(len(rows), np.int64)
    for part in np.array_split(np.arange(len(rows)), 4):
        twice[part[::2]] = 1
    assert int(got.count.sum()) == int(rows.count.sum() + rows.count[twice == 1].sum())
    assert int(got.cnt.sum()) == int(got.count.sum())
    assert isinstance(got, HistRows)
