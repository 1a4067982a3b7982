"""Closed partitions are rewritten in series order; long-step range queries read
minute rollups and answer exactly what 10 s rows answer."""
import numpy as np

from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.model import NS, SeriesCatalog, make_labels
from collector.query.engine import Engine
from collector.query.loader import rollup_resolution
from collector.query.memsource import MemorySource
from collector.query.source import LiveSource
from collector.store.base import Retention
from collector.store.duckdb_store import DuckDBStore

HOUR = 3600
NOW = 1_800_000_000 * NS  # an hour boundary


def _filled_store(tmp_path, hours=3):
    retention = Retention(by_res={10: 2 * 86400, 60: 30 * 86400, 3600: 400 * 86400}, samples=86400, rollup_after=90)
    store = DuckDBStore(str(tmp_path / "t.duckdb"), retention)
    cat = SeriesCatalog()
    agg = Aggregator(cat, AggregatorSettings(lateness_seconds=hours * HOUR + 60), clock=lambda: NOW)
    rng = np.random.default_rng(5)
    n = 40_000
    ends = NOW - rng.integers(1, hours * HOUR, n) * NS
    which = rng.integers(0, 4, n)
    labels = [make_labels({"service_name": f"s{i % 2}", "http_route": f"/r{i}"}) for i in range(4)]
    agg.record_durations("traces_span_metrics_duration_seconds", labels, which, ends, rng.lognormal(-2, 0.8, n))
    store.write(agg.take_closed(force=True))
    return store, cat, agg


def test_closed_partitions_are_sorted_once_and_read_the_same(tmp_path):
    store, cat, agg = _filled_store(tmp_path)
    ids = np.array([s.id for s in cat.all()], np.uint64)
    before = store.read_hist(ids, 0, NOW)
    done = store.maintain(NOW + 5 * 60 * NS)
    assert done["sorted_partitions"] >= 3  # the three closed hours (and the rollups written since)
    flags = dict(store._con.sql("SELECT name, sorted FROM partitions").fetchall())
    assert all(flags[n] for n in flags if n.startswith("hist_10_"))
    first = sorted(n for n in flags if n.startswith("hist_10_"))[0]
    sids = [r[0] for r in store._con.sql(f"SELECT series_id FROM {first}").fetchall()]
    assert sids == sorted(sids)
    after = store.read_hist(ids, 0, NOW)
    assert int(after.count.sum()) == int(before.count.sum())
    assert store.maintain(NOW + 6 * 60 * NS)["sorted_partitions"] == 0  # once each


def test_rollup_resolution_only_when_exact():
    t = np.arange(10) * 60 * NS + 1_800_000_000 * NS
    assert rollup_resolution(t, 300 * NS) == 60
    assert rollup_resolution(t + 10 * NS, 300 * NS) is None       # times off the minute
    assert rollup_resolution(t, 90 * NS) is None                 # window not whole minutes
    assert rollup_resolution(t[::2] // (30 * NS) * (30 * NS), 60 * NS) == 60
    assert rollup_resolution(np.arange(3) * HOUR * NS, HOUR * NS) == 3600
    assert rollup_resolution(np.arange(0, 600, 30) * NS, 300 * NS) is None  # steps closer than a minute


def test_minute_step_queries_read_rollups_and_match_10s_rows(tmp_path):
    store, cat, agg = _filled_store(tmp_path)
    ids = np.array([s.id for s in cat.all()], np.uint64)
    fine = store.read_hist(ids, 0, NOW)                     # every 10 s row, before any rollup
    store.maintain(NOW + 3 * 60 * NS)                       # minutes rolled up to ~NOW
    live = LiveSource(store, agg)
    got = store.read_hist(ids, NOW - 2 * HOUR * NS, NOW, min_end_ns=NOW - 2 * HOUR * NS, coarsest_res=60)
    assert set(got.res.tolist()) == {60}, "older data should come from the minute rollups"
    oracle = MemorySource(cat, fine)
    q = 'histogram_quantile(0.95, sum by (service_name) (rate(traces_span_metrics_duration_seconds[5m])))'
    start, end = (NOW - 2 * HOUR * NS) / NS, NOW / NS
    a = Engine(live, clock=lambda: NOW / NS + 300).range(q, start, end, 60).to_json()
    b = Engine(oracle, clock=lambda: NOW / NS + 300).range(q, start, end, 60).to_json()
    assert a == b
    c = 'sum(increase(traces_span_metrics_duration_seconds_count[10m]))'
    assert Engine(live, clock=lambda: NOW / NS + 300).range(c, start, end, 120).to_json() == \
        Engine(oracle, clock=lambda: NOW / NS + 300).range(c, start, end, 120).to_json()
