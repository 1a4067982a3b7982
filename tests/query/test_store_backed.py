"""The PromQL engine over each real store (DuckDB file, PostgreSQL) answers
exactly what it answers over the same rows held in memory: histograms, their
_count/_sum, float samples, and range queries that read minute rollups."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "store"))
from backends import both_backends  # noqa: E402
from benchdata import rows_for  # noqa: E402

from collector.aggregate.aggregator import Aggregator  # noqa: E402
from collector.model import KIND_GAUGE, NS, SampleRows, Series, SeriesCatalog, make_labels, series_id  # noqa: E402
from collector.query.engine import Engine  # noqa: E402
from collector.query.head import Head  # noqa: E402
from collector.query.memsource import MemorySource  # noqa: E402
from collector.query.source import LiveSource  # noqa: E402
from collector.store.base import Retention, WriteBatch  # noqa: E402

pytestmark = both_backends
END_S = 1_800_000_000 + 300        # five minutes past an hour
H = 'traces_span_metrics_duration_seconds'
QUERIES = [
    f'histogram_quantile(0.95, sum by (service_name) (rate({H}[5m])))',
    f'sum by (http_route) (increase({H}_count{{service_name="s1"}}[10m]))',
    f'histogram_count(sum(rate({H}{{http_route=~"/r[12]"}}[1m])))',
    f'sum({H}_sum)',
    'avg_over_time(queue_depth[10m])',
    'max by (job) (queue_depth)',
]


@pytest.fixture(params=["head", "no-head"])
def stores(make_store, request):
    """The LiveSource with its in-memory head of recent slots (as the service runs
    it) and without (every read from the store): the answers must not differ."""
    retention = Retention(by_res={10: 2 * 86400, 60: 30 * 86400, 3600: 400 * 86400}, samples=86400, rollup_after=90)
    store = make_store(retention)
    series, rows = rows_for(END_S * NS, 2 * 3600, services=3, routes=4)
    rng = np.random.default_rng(4)
    gauges = [Series(series_id("queue_depth", make_labels({"job": j})), "queue_depth", make_labels({"job": j}),
                     KIND_GAUGE) for j in ("a", "b")]
    t = (END_S - np.arange(0, 3600, 15)) * NS
    samples = SampleRows(np.repeat([g.id for g in gauges], len(t)).astype(np.uint64), np.tile(t, 2),
                         rng.normal(10, 3, 2 * len(t)))
    store.write(WriteBatch(series=series + gauges, hist=rows, samples=samples))
    cat = SeriesCatalog()
    for s in series + gauges:
        cat.add(s)
    head = None
    if request.param == "head":
        head = Head(900, 10, clock=lambda: END_S * NS)
        head.load(store, np.array([s.id for s in series], np.uint64))
    live = LiveSource(store, Aggregator(cat, clock=lambda: END_S * NS), head)
    return store, live, MemorySource(cat, rows, samples)


def test_instant_and_range_queries_equal_the_in_memory_answer(stores):
    store, live, oracle = stores
    for q in QUERIES:
        a = Engine(live, clock=lambda: END_S).instant(q, END_S).to_json()
        b = Engine(oracle, clock=lambda: END_S).instant(q, END_S).to_json()
        assert a == b, q
        a = Engine(live, clock=lambda: END_S).range(q, END_S - 1800, END_S, 30).to_json()
        b = Engine(oracle, clock=lambda: END_S).range(q, END_S - 1800, END_S, 30).to_json()
        assert a == b, q
        a = Engine(live, clock=lambda: END_S).range(q, END_S - 300, END_S, 15).to_json()
        b = Engine(oracle, clock=lambda: END_S).range(q, END_S - 300, END_S, 15).to_json()
        assert a == b, q
    if live.head is not None:
        assert live.head.reads > 0     # the recent windows were answered from memory


def test_minute_step_range_queries_read_rollups_and_answer_the_same(stores):
    store, live, oracle = stores
    store.maintain((END_S + 180) * NS)                       # minutes rolled up to about END_S
    ids = np.array([s.id for s in live.catalog.all()], np.uint64)
    got = store.read_hist(ids, (END_S - 7200) * NS, (END_S - 600) * NS, min_end_ns=(END_S - 7200) * NS,
                          coarsest_res=60)
    assert set(got.res.tolist()) == {60}
    q = QUERIES[0]
    a = Engine(live, clock=lambda: END_S + 300).range(q, END_S - 6000, END_S - 600, 60).to_json()
    b = Engine(oracle, clock=lambda: END_S + 300).range(q, END_S - 6000, END_S - 600, 60).to_json()
    assert a == b
