"""Exemplars in both stores (DuckDB file, real PostgreSQL): written with the flush,
merged per (series, slot, octave) so that a slot flushed several times keeps its
slowest, read back with memory (read your writes), dropped with the slot-resolution
rows, never rolled up, and visible to analysts in ``latency_exemplars``."""
import numpy as np
import pytest

from backends import both_backends
from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.aggregate.exemplars import GROUPS, group_of_seconds, ids_array, id_row
from collector.model import NS, SeriesCatalog, make_labels
from collector.query.source import LiveSource
from collector.store.base import Retention, WriteBatch

NOW = 1_800_000_000 * NS
DAY = 86_400
METRIC = "traces_span_metrics_duration_seconds"
pytestmark = both_backends


def _tid(i: int) -> bytes:
    return (i + 1).to_bytes(16, "big")


def _record(agg, values, end_ns, first_id=0, labels=({"service_name": "checkout"},)):
    label_sets = [make_labels(d) for d in labels]
    n = len(values)
    ids = ids_array([id_row(_tid(first_id + i), (first_id + i + 1).to_bytes(8, "big")) for i in range(n)])
    return agg.record_durations(METRIC, label_sets, np.arange(n) % len(label_sets), np.full(n, end_ns),
                                np.asarray(values, float), ids=ids)


def _analyst_rows(store):
    sql = "SELECT metric, value, trace_id, span_id FROM latency_exemplars ORDER BY value"
    if hasattr(store, "_con"):
        return store._con.sql(sql).fetchall()
    import psycopg

    with psycopg.connect(store.settings.dsn) as con:
        return [tuple(r) for r in con.execute(sql).fetchall()]


def test_exemplars_are_stored_read_back_and_shown_to_analysts(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = Aggregator(cat, clock=lambda: NOW)
    values = [0.0021, 0.003, 0.09, 0.11, 0.8, 2.5]   # octaves: 0.003 and 0.0021 share one, so do 0.09 and 0.11
    _record(agg, values, NOW - 35 * NS)
    batch = agg.take_closed()
    assert len(batch.exemplars) == 4
    store.write(batch)
    sid = np.array([s.id for s in cat.all()], np.uint64)
    got = store.read_exemplars(sid, NOW - 60 * NS, NOW)
    assert sorted(got.value.tolist()) == [0.003, 0.11, 0.8, 2.5]
    assert set(got.grp.tolist()) == set(group_of_seconds(np.array(values)).tolist())
    assert (got.ts == (NOW - 40 * NS)).all() and (got.at == NOW - 35 * NS).all()
    by_value = {v: (bytes(t), bytes(s)) for v, t, s in zip(got.value.tolist(), got.trace_id, got.span_id)}
    assert by_value[2.5] == (_tid(5), (6).to_bytes(8, "big"))
    rows = _analyst_rows(store)
    assert [r[1] for r in rows] == [0.003, 0.11, 0.8, 2.5]
    assert rows[-1][0] == METRIC and rows[-1][2] == _tid(5).hex() and rows[-1][3] == (6).to_bytes(8, "big").hex()
    # outside the window: nothing
    assert len(store.read_exemplars(sid, NOW - 30 * NS, NOW)) == 0


def test_a_slot_flushed_twice_keeps_the_slowest_per_octave_on_disk_and_with_memory(make_store):
    """The WAL-on flush writes open slots: the same (series, slot) arrives in several
    batches, and a query merges what is still in memory with what is stored."""
    store, cat = make_store(), SeriesCatalog()
    agg = Aggregator(cat, clock=lambda: NOW)
    slot_end = NOW - 25 * NS
    _record(agg, [0.10, 0.5], slot_end, first_id=0)
    store.write(agg.take_closed(force=True))
    _record(agg, [0.12, 0.4], slot_end, first_id=10)           # 0.12 beats 0.10, 0.4 loses to 0.5
    store.write(agg.take_closed(force=True))
    _record(agg, [0.13], slot_end, first_id=20)                # still in memory
    sid = np.array([s.id for s in cat.all()], np.uint64)
    disk = store.read_exemplars(sid, 0, NOW)
    assert sorted(disk.value.tolist()) == [0.12, 0.5]
    assert {bytes(t) for t in disk.trace_id} == {_tid(10), _tid(1)}
    live = LiveSource(store, agg).read_exemplars(sid, 0, NOW)
    assert sorted(live.value.tolist()) == [0.13, 0.5]
    store.write(agg.take_closed(force=True))
    store2 = make_store()                                       # a restart reads the same
    assert sorted(store2.read_exemplars(sid, 0, NOW).value.tolist()) == [0.13, 0.5]


def test_a_failed_write_puts_exemplars_back(make_store):
    store, cat = make_store(), SeriesCatalog()
    agg = Aggregator(cat, clock=lambda: NOW)
    _record(agg, [0.2, 3.0], NOW - 35 * NS)
    batch = agg.take_closed()
    agg.putback(batch)                                          # as the service does when the store refuses
    _record(agg, [3.5], NOW - 35 * NS, first_id=50)
    store.write(agg.take_closed())
    sid = np.array([s.id for s in cat.all()], np.uint64)
    got = store.read_exemplars(sid, 0, NOW)
    assert sorted(got.value.tolist()) == [0.2, 3.5]


def test_exemplars_go_with_the_slot_rows_and_are_not_rolled_up(make_store):
    ret = Retention(by_res={10: 2 * 3600, 60: DAY, 3600: 30 * DAY}, samples=DAY, rollup_after=60)
    store, cat = make_store(ret), SeriesCatalog()
    t0 = NOW - 3 * 3600 * NS
    agg = Aggregator(cat, AggregatorSettings(lateness_seconds=4 * 3600), clock=lambda: NOW)
    _record(agg, [0.3], t0 + 5 * NS)
    _record(agg, [0.4], NOW - 15 * NS, first_id=5)
    store.write(agg.take_closed(force=True))
    sid = np.array([s.id for s in cat.all()], np.uint64)
    assert len(store.read_exemplars(sid, 0, NOW + NS)) == 2
    done = store.maintain(NOW)
    assert done["rolled_up_rows"] > 0 and done["dropped_partitions"] >= 2   # the old hour of rows and exemplars
    left = store.read_exemplars(sid, 0, NOW + NS)
    assert left.value.tolist() == [0.4]
    hist = store.read_hist(sid, 0, NOW + NS)
    assert 60 in hist.res.tolist() or 3600 in hist.res.tolist()   # the old slot lives on as a rollup, without exemplars


def test_octaves_and_series_bound_what_is_kept(make_store):
    """10 000 spans of two series in one slot: at most one exemplar per series and octave."""
    store, cat = make_store(), SeriesCatalog()
    agg = Aggregator(cat, clock=lambda: NOW)
    x = np.random.default_rng(1).lognormal(-3, 2, 10_000)
    _record(agg, x, NOW - 35 * NS, labels=({"service_name": "a"}, {"service_name": "b"}))
    store.write(agg.take_closed())
    got = store.read_exemplars(np.array([s.id for s in cat.all()], np.uint64), 0, NOW)
    per_series = len(set(group_of_seconds(x).tolist()))
    assert len(got) <= 2 * per_series <= 2 * GROUPS
    assert got.value.max() == pytest.approx(x.max())
