"""The paths that skip the dense bucket matrix (issue 17) give exactly the
answers of the dense path: histogram_quantile of HDR series by blocks of keys,
histogram_count/sum/avg from row totals."""
from __future__ import annotations

import numpy as np
import pytest

from collector.aggregate import hdr
from collector.query import hist as H
from collector.query import loader as L

NS = 1_000_000_000


def _raw(rnd, n_rows: int, t0: int, spread_keys: int) -> H.HistRaw:
    if n_rows == 0:
        z = np.zeros(0)
        return H.HistRaw(H.HDR, z.astype(np.int64), z, z, z, z.astype(np.int64), z, z)
    ends = np.sort(t0 + rnd.integers(1, 4000, n_rows) * 10 * NS // 10)
    lens = rnd.integers(0, 40, n_rows)
    base = rnd.integers(200, 200 + spread_keys, n_rows)
    keys, cnts = [], []
    for b, k in zip(base, lens):
        kk = np.unique(b + rnd.integers(0, 300, k))
        keys.append(kk)
        cnts.append(rnd.integers(1, 50, len(kk)))
    lens = np.array([len(k) for k in keys])
    keys = np.concatenate(keys).astype(float) if keys else np.zeros(0)
    cnts = np.concatenate(cnts).astype(float) if cnts else np.zeros(0)
    counts = np.bincount(np.repeat(np.arange(n_rows), lens), weights=cnts, minlength=n_rows)
    return H.HistRaw(H.HDR, ends, counts, counts * 0.1, np.ones(n_rows), lens.astype(np.int64), keys, cnts)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("w_s", [None, 60, 300, 3600])
def test_quantile_lazy_equals_dense(seed, w_s):
    rnd = np.random.default_rng(seed)
    t0 = 1_700_000_000 * NS
    raw = _raw(rnd, 300, t0, 1500 if seed % 2 else 20)
    T = t0 + np.arange(0, 400 * NS, 7 * NS) + (w_s or 0) * NS // 2
    win = H.Window(T, None if w_s is None else w_s * NS, 300 * NS, 1.0 / (w_s or 1))
    for q in (0.0, 0.01, 0.5, 0.95, 0.99, 1.0, -1.0, 2.0, np.nan):
        qs = np.full(len(T), q)
        want = H.quantile(H.materialize(raw, win, 10**9), qs)
        got, present = H.quantile_lazy(raw, win, qs, 10**9)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(present, H.materialize(raw, win, 10**9).present)
    qs = rnd.random(len(T))
    np.testing.assert_array_equal(H.quantile_lazy(raw, win, qs, 10**9)[0], H.quantile(H.materialize(raw, win, 10**9), qs))


def test_totals_equal_dense():
    rnd = np.random.default_rng(3)
    t0 = 1_700_000_000 * NS
    raw = _raw(rnd, 200, t0, 100)
    T = t0 + np.arange(0, 400 * NS, 15 * NS)
    for w in (None, 300 * NS):
        win = H.Window(T, w, 300 * NS)
        m = H.materialize(raw, win, 10**9)
        c, s, p = H.totals(raw, win)
        np.testing.assert_array_equal(c, m.count)
        np.testing.assert_array_equal(s, m.sum)
        np.testing.assert_array_equal(p, m.present)


def test_quantile_lazy_block_edges():
    """Ranks that fall on the last key of a block and the first of the next."""
    t0 = 1_700_000_000 * NS
    keys = np.array([31.0, 32.0, 63.0, 64.0, hdr.COUNTS_LEN - 1.0])
    cnts = np.array([1.0, 1.0, 1.0, 1.0, 1.0])
    raw = H.HistRaw(H.HDR, np.array([t0 + 5 * NS]), np.array([5.0]), np.array([1.0]), np.ones(1),
                    np.array([5]), keys, cnts)
    T = np.array([t0 + 10 * NS])
    win = H.Window(T, 60 * NS, 300 * NS)
    for q in np.linspace(0, 1, 21):
        qs = np.array([q])
        assert H.quantile_lazy(raw, win, qs, 10**9)[0][0] == H.quantile(H.materialize(raw, win, 10**9), qs)[0]


def test_count_sum_avg_read_without_buckets_give_the_same_answers(tmp_path):
    """histogram_count/_sum/_avg (and _count/_sum series) read rows without their
    bucket lists; the answers are those of the full rows, and a quantile nested in
    their argument still sees the buckets."""
    from bench import datagen
    from collector.aggregate.aggregator import Aggregator
    from collector.model import SeriesCatalog
    from collector.query.engine import Engine
    from collector.query.source import LiveSource
    from collector.store.duckdb_store import DuckDBStore

    end_s = 1_735_776_000
    store = DuckDBStore(str(tmp_path / "t.duckdb"))
    p = datagen.make_series(2, 3)
    datagen.fill(store, p, end_s * NS, 1800)
    cat = SeriesCatalog()
    for s in store.load_series():
        cat.add(s)
    eng = Engine(LiveSource(store, Aggregator(cat, clock=lambda: end_s * NS)), clock=lambda: float(end_s))
    calls = []
    real = store.read_hist

    def spy(*a, **kw):
        calls.append(kw.get("buckets", True))
        return real(*a, **kw)

    store.read_hist = spy
    M = "traces_span_metrics_duration_seconds"
    for expr, want in [
        (f"histogram_count(rate({M}[5m]))", f"sum without (le) (rate({M}_count[5m]))"),
        (f"histogram_sum(increase({M}[10m]))", f"increase({M}_sum[10m])"),
        (f"histogram_avg(sum by (service_name) (rate({M}[5m])))",
         f"sum by (service_name) (rate({M}_sum[5m])) / sum by (service_name) (rate({M}_count[5m]))"),
    ]:
        calls.clear()
        got = eng.range(expr, end_s - 900, end_s, 60)
        assert calls and not any(calls), expr
        ref = eng.range(want, end_s - 900, end_s, 60)
        g = {tuple(sorted(d["metric"].items())): d["values"] for d in got.data}
        r = {tuple(sorted(d["metric"].items())): d["values"] for d in ref.data}
        assert g.keys() == r.keys() and g
        for k in g:
            assert [t for t, _ in g[k]] == [t for t, _ in r[k]]
            np.testing.assert_allclose([float(v) for _, v in g[k]], [float(v) for _, v in r[k]], rtol=1e-12)
    calls.clear()
    nested = eng.instant(f"histogram_count(rate({M}[5m])) * on(service_name, http_route) "
                         f"histogram_quantile(0.5, rate({M}[5m]))", end_s)
    assert True in calls and nested.data
    store.close()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("w_s", [None, 60, 300])
def test_quantile_instant_many_equals_dense(seed, w_s):
    rnd = np.random.default_rng(100 + seed)
    t0 = 1_700_000_000 * NS
    raws = [_raw(rnd, int(rnd.integers(0, 40)), t0, 1500 if k % 2 else 30) for k in range(25)]
    T = np.array([t0 + int(rnd.integers(0, 400)) * NS])
    win = H.Window(T, None if w_s is None else w_s * NS, 120 * NS, 1.0 / (w_s or 1))
    for q in (0.0, 0.01, 0.5, 0.95, 0.999, 1.0, -1.0, 2.0, np.nan, float(rnd.random())):
        got, present = H.quantile_instant_many(raws, win, q)
        for i, raw in enumerate(raws):
            m = H.materialize(raw, win, 10**9)
            np.testing.assert_array_equal(got[i:i + 1], H.quantile(m, np.array([q])))
            assert present[i] == m.present[0]


def test_quantile_instant_many_sorting_path(monkeypatch):
    """Past DENSE_KEYS_MAX the (series, key) pairs are sorted instead of counted: same answers."""
    rnd = np.random.default_rng(7)
    t0 = 1_700_000_000 * NS
    raws = [_raw(rnd, int(rnd.integers(0, 30)), t0, 800) for _ in range(12)]
    win = H.Window(np.array([t0 + 300 * NS]), 300 * NS, 300 * NS, 1 / 300)
    dense = [H.quantile_instant_many(raws, win, q) for q in (0.5, 0.9, 0.99)]
    monkeypatch.setattr(H, "DENSE_KEYS_MAX", 0)
    for q, (v, p) in zip((0.5, 0.9, 0.99), dense):
        v2, p2 = H.quantile_instant_many(raws, win, q)
        np.testing.assert_array_equal(v, v2)
        np.testing.assert_array_equal(p, p2)


@pytest.mark.parametrize("cells", [2_000_000, 50])     # 50: a few series per chunk
@pytest.mark.parametrize("seed", range(4))
def test_bulk_counters_equal_per_series_deltas(seed, cells, monkeypatch):
    """rate/increase and instant values of _count/_sum series computed for every
    series at once (loader.bulk_counters) equal the per-series path (to_delta,
    eval_delta, delta_as_cumulative)."""
    from collector.model import HistRows
    from collector.query import rangefuncs as R
    from collector.query.selectors import COUNT, SUM, Exposed

    monkeypatch.setattr(L, "BULK_CELLS", cells)
    rnd = np.random.default_rng(seed)
    t0 = 1_700_000_000 * NS
    parts, sel = [], []
    for s in range(1, 9):
        n = int(rnd.integers(0, 60))
        res = rnd.choice([10, 60], n)
        ts = np.sort(t0 + rnd.integers(0, 200, n) * 10 * NS)
        cnt = rnd.integers(0, 50, n)
        parts.append(HistRows(np.full(n, s, np.uint64), ts, res.astype(np.int32), cnt, rnd.random(n) * cnt,
                              np.zeros(n), np.zeros(n), np.zeros(n + 1, np.int64), np.zeros(0, np.int32),
                              np.zeros(0, np.int64)))
        for acc in (COUNT, SUM):
            sel.append(Exposed(f"m_{acc}", (("i", str(s)),), s, acc, "hdr"))
    per = L.PerSeries(HistRows.concat(parts))
    now = t0 + 1900 * NS
    T = t0 + np.arange(0, 2100 * NS, 45 * NS)
    for w in (60 * NS, 300 * NS):
        edges = np.unique(np.concatenate([T - w, T]))
        lo, hi = np.searchsorted(edges, T - w), np.searchsorted(edges, T)
        got, upto, nrows, last, _ = L.bulk_counters(per, sel, edges, now)
        for i, x in enumerate(got):
            d = L.to_delta(per[x.sid], x.access, now)
            for func in ("rate", "increase"):
                v, m = R.eval_delta(func, d, T, w)
                bv = upto[i, hi] - upto[i, lo]
                if func == "rate":
                    bv = bv / (w / NS)
                bm = (nrows[i, hi] - nrows[i, lo]) > 0
                np.testing.assert_array_equal(bm, m)
                np.testing.assert_allclose(bv[m], v[m], rtol=1e-12, atol=1e-12)
            fd = L.delta_as_cumulative(d)
            j = np.searchsorted(fd.ts, T, side="right") - 1
            has = j >= 0
            np.testing.assert_allclose(upto[i, hi][has], fd.vals[j[has]], rtol=1e-12)
            np.testing.assert_array_equal(last[i, hi][has], fd.ts[j[has]])
        assert {x.sid for x in got} == {s for s in range(1, 9) if s in per}


def test_count_and_group_of_a_selector_read_only_the_lookback(tmp_path):
    """count()/group() of a selector need only which series are present: the rows of
    the lookback window are read (not everything since the first slot), and the
    answers are those of the full path (forced here through `* 1`)."""
    from bench import datagen
    from collector.aggregate.aggregator import Aggregator
    from collector.model import SeriesCatalog
    from collector.query.engine import Engine
    from collector.query.source import LiveSource
    from collector.store.duckdb_store import DuckDBStore

    end_s = 1_735_776_000
    store = DuckDBStore(str(tmp_path / "c.duckdb"))
    p = datagen.make_series(3, 5)
    datagen.fill(store, p, end_s * NS, 3600)
    datagen.fill(store, datagen.make_series(3, 7, seed=3), (end_s - 1200) * NS, 1200)   # some go stale
    cat = SeriesCatalog()
    for s in store.load_series():
        cat.add(s)
    eng = Engine(LiveSource(store, Aggregator(cat, clock=lambda: end_s * NS)), clock=lambda: float(end_s))
    starts = []
    real = store.read_hist

    def spy(ids, start, end, **kw):
        starts.append(start)
        return real(ids, start, end, **kw)

    store.read_hist = spy
    M = "traces_span_metrics_duration_seconds"
    for sel in (f"{M}_count", "traces_span_metrics_calls_total", M, f'{M}_sum{{service_name="s1"}}'):
        for agg in ("count", "group", "count by (service_name)"):
            starts.clear()
            got = eng.range(f"{agg} ({sel})", end_s - 1800, end_s, 60).to_json()
            assert starts and min(starts) > 0, (agg, sel)
            ref = eng.range(f"{agg} ({sel} * 1)", end_s - 1800, end_s, 60).to_json()
            assert got == ref and got["result"], (agg, sel)
            assert eng.instant(f"{agg} ({sel})", end_s).to_json() == eng.instant(f"{agg} ({sel} * 1)", end_s).to_json()
    store.close()
