"""Read-path shortcuts keep answers identical: the inverted label index against
brute-force matching, windowed reads (min_end) and the per-batch read cache
against plain evaluation, on the same data."""
from __future__ import annotations

import re

import numpy as np
import pytest

from collector.model import KIND_GAUGE, HistRows
from collector.query.engine import Engine
from collector.query.selectors import SeriesIndex
from helpers import HistBuilder

METRIC = "traces_span_metrics_duration_seconds"


def _source():
    b = HistBuilder()
    rng = np.random.default_rng(3)
    for s in range(3):
        for r in range(4):
            for k in range(40):                      # 40 slots of 10 s
                n = int(rng.integers(1, 30))
                b.add_hdr(METRIC, {"service_name": f"s{s}", "http_route": f"/r{r}"}, 1000 + 10 * k,
                          rng.lognormal(-2 + 0.3 * r, 0.5, n))
    b.add_float("up", {"job": "a"}, KIND_GAUGE, [(1000, 1.0), (1300, 1.0)])
    b.add_float("up", {"job": "b", "env": "x"}, KIND_GAUGE, [(1000, 0.0)])
    return b.source()


def _brute(index: SeriesIndex, sets):
    out = {}
    for ms in sets:
        for e in index.all():
            d = dict(e.labels)
            ok = True
            for name, op, value in ms:
                v = d.get(name, "")
                rx = re.compile(value, re.DOTALL) if op in ("=~", "!~") else None
                ok &= {"=": v == value, "!=": v != value, "=~": bool(rx and rx.fullmatch(v)),
                       "!~": not (rx and rx.fullmatch(v))}[op]
            if ok:
                out[e.labels] = e
    return [out[k] for k in sorted(out)]


@pytest.mark.parametrize("sets", [
    [[("__name__", "=", METRIC), ("service_name", "=", "s1")]],
    [[("__name__", "=~", ".*_count"), ("http_route", "!=", "/r1")]],
    [[("service_name", "=~", "s[01]"), ("http_route", "!~", "/r[23]")]],
    [[("env", "=", "")], [("job", "=", "b")]],
    [[("__name__", "=", "up"), ("env", "!=", "")]],
    [[("__name__", "=", "up"), ("env", "=~", "x|")]],
    [[("nope", "=", "z")]],
    [[]],
])
def test_index_matches_like_brute_force(sets):
    src = _source()
    index = SeriesIndex(src.catalog)
    assert index.match(sets) == _brute(index, sets)


def test_index_follows_a_growing_catalog():
    src = _source()
    index = SeriesIndex(src.catalog)
    assert index.match([[("__name__", "=", "ALERTS")]]) == []
    from collector.model import Series, make_labels, series_id
    lab = make_labels({"alertname": "X"})
    src.catalog.add(Series(series_id("ALERTS", lab), "ALERTS", lab, KIND_GAUGE))
    got = index.match([[("__name__", "=", "ALERTS")]])
    assert [dict(e.labels)["alertname"] for e in got] == ["X"]
    assert index.match([[("alertname", "!=", "")]]) == _brute(index, [[("alertname", "!=", "")]])


QUERIES = [
    'histogram_quantile(0.95, sum by (service_name, http_route) '
    '(rate({0}{{service_name="s{1}", http_route="/r{2}"}}[2m])))',
    'sum by (service_name, http_route) (increase({0}_count{{service_name="s{1}", http_route="/r{2}"}}[2m]))',
    'histogram_fraction(0, 0.2, rate({0}{{service_name="s{1}", http_route="/r{2}"}}[1m]))',
]


def test_batched_queries_answer_like_single_ones():
    src = _source()
    plain = Engine(src)
    batched = Engine(src)
    exprs = [q.format(METRIC, s, r) for q in QUERIES for s in range(3) for r in range(4)]
    want = {(e, t): plain.instant_vector(e, t) for e in exprs for t in (1200, 1390)}
    for t in (1200, 1390):
        reads = src.reads
        with batched.batch(len(exprs)):
            cache = batched.read_cache()
            got = {(e, t): batched.instant_vector(e, t) for e in exprs}
        assert got == {k: v for k, v in want.items() if k[1] == t}
        assert cache.reads <= 3           # one shared read per window (1m, 2m) rather than one per query
        assert src.reads - reads < len(exprs)
    assert batched.read_cache() is None


def test_min_end_reads_fewer_rows_and_gives_the_same_answer():
    src = _source()
    ids = np.array(sorted(src.catalog.by_id), np.uint64)
    lo, hi, min_end = 0, 2000 * 10**9, 1300 * 10**9
    all_rows = src.read_hist(ids, lo, hi)
    tight = src.read_hist(ids, lo, hi, min_end_ns=min_end)
    assert 0 < len(tight) < len(all_rows)
    ends = tight.ts + tight.res.astype(np.int64) * 10**9
    assert (ends > min_end).all()
    kept = all_rows.ts + all_rows.res.astype(np.int64) * 10**9 > min_end
    assert int(kept.sum()) == len(tight)
    assert isinstance(tight, HistRows)
