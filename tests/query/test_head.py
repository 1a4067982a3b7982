"""The in-memory head of recent slots answers every read it covers exactly as
the store does: slots written twice (the open slot on every flush), late rows,
custom bucket layouts, eviction by age and by size, and a head loaded at start
from what the store already holds."""
from __future__ import annotations

import numpy as np
import pytest

from collector.aggregate.merge import merge_rows
from collector.model import KIND_CUSTOM, KIND_HDR, NS, HistRows, Series, SeriesCatalog, make_labels, series_id
from collector.query.head import Head
from collector.store.base import WriteBatch
from collector.store.duckdb_store import DuckDBStore

T0 = 1_800_000_000 * NS


def _series(n: int) -> list[Series]:
    out = []
    for i in range(n):
        lab = make_labels({"i": str(i)})
        kind = KIND_CUSTOM if i % 5 == 4 else KIND_HDR
        out.append(Series(series_id("m", lab), "m", lab, kind, "s"))
    return out


def _rows(rnd, series: list[Series], slots: np.ndarray, frac: float = 0.7) -> HistRows:
    parts = []
    for st in slots.tolist():
        for s in series:
            if rnd.random() > frac:
                continue
            k = int(rnd.integers(1, 6))
            if s.kind == KIND_CUSTOM:
                bounds = (0.1, 0.5, 1.0) if rnd.random() < 0.8 else (0.2, 2.0)
                idx = np.unique(rnd.integers(0, len(bounds) + 1, k)).astype(np.int32)
            else:
                bounds = None
                idx = np.unique(rnd.integers(100, 400, k)).astype(np.int32)
            cnt = rnd.integers(1, 9, len(idx)).astype(np.int64)
            parts.append(HistRows(np.array([s.id], np.uint64), np.array([st], np.int64), np.array([10], np.int32),
                                  np.array([cnt.sum()], np.int64), np.array([float(cnt.sum()) * 0.1]),
                                  np.array([0.01]), np.array([0.9]), np.array([0, len(idx)], np.int64), idx, cnt,
                                  (bounds,) if bounds is not None else ()))
    return HistRows.concat(parts)


def _canon(rows: HistRows) -> tuple:
    rows = merge_rows(rows)
    layout = np.array([str(b) for b in (rows.bounds or [None] * len(rows))])   # two layouts of one slot
    o = np.lexsort((layout, rows.ts, rows.series_id))
    rows = rows.take(o)
    return (rows.series_id.tolist(), rows.ts.tolist(), rows.count.tolist(), rows.sum.tolist(),
            rows.offsets.tolist(), rows.idx.tolist(), rows.cnt.tolist(), list(rows.bounds or [None] * len(rows)))


@pytest.mark.parametrize("seed", range(4))
def test_head_reads_equal_store_reads(tmp_path, seed):
    rnd = np.random.default_rng(seed)
    series = _series(12)
    store = DuckDBStore(str(tmp_path / "s.duckdb"))
    now = [T0]
    # what the store held before the service started: 20 minutes of slots
    before = _rows(rnd, series, T0 - np.arange(1, 121)[::-1] * 10 * NS)
    store.write(WriteBatch(series=series, hist=before))
    head = Head(600, 10, clock=lambda: now[0], max_rows=10_000)
    ids = np.array(sorted(s.id for s in series), np.uint64)
    head.load(store, ids)
    assert head.complete_from_ns == T0 - 600 * NS
    for step in range(40):
        now[0] += 5 * NS
        cur = (now[0] // (10 * NS)) * 10 * NS
        slots = [cur - 10 * NS, cur]                        # the open slot is written on every flush
        if step % 7 == 3:
            slots.append(cur - int(rnd.integers(3, 25)) * 10 * NS)   # late data, sometimes older than the head
        batch = _rows(rnd, series, np.array(sorted(set(slots)), np.int64))
        store.write(WriteBatch(hist=batch))
        head.add(batch)
        for _ in range(3):
            want = np.sort(rnd.choice(ids, int(rnd.integers(1, len(ids) + 1)), replace=False))
            a = now[0] - int(rnd.integers(0, 900)) * NS
            got = head.read_hist(want, a, now[0] + 10 * NS)
            if a < head.complete_from_ns:
                assert got is None
                continue
            ref = store.read_hist(want, a, now[0] + 10 * NS)
            assert _canon(got) == _canon(ref)
    store.close()


def test_head_evicts_by_age_and_by_rows():
    rnd = np.random.default_rng(9)
    series = _series(10)
    now = [T0]
    head = Head(120, 10, clock=lambda: now[0], max_rows=10**6)
    head.complete_from_ns = T0 - 120 * NS
    head.add(_rows(rnd, series, T0 - np.arange(0, 20)[::-1] * 10 * NS, frac=1.0))
    assert head.complete_from_ns == T0 - 120 * NS
    assert min(head._slots) == T0 - 120 * NS
    now[0] += 60 * NS
    head.add(HistRows.empty())
    assert head.complete_from_ns == T0 - 60 * NS and min(head._slots) == T0 - 60 * NS
    head.max_rows = 25                     # 10 rows a slot: only the last two slots stay
    head.add(HistRows.empty())
    assert head.stats() == (2, 20) and head.complete_from_ns == T0 - 10 * NS
    assert head.read_hist(np.array([series[0].id], np.uint64), T0 - 20 * NS, T0 + NS) is None
    assert len(head.read_hist(np.array([series[0].id], np.uint64), T0 - 10 * NS, T0 + NS)) == 2


def test_service_wiring_default_and_off():
    from collector.config import Config

    assert Config().query.head > 0
    assert Config.model_validate({"query": {"head": 0}}).query.head == 0


def test_head_reads_take_ids_in_any_order():
    rnd = np.random.default_rng(5)
    series = _series(30)
    head = Head(300, 10, clock=lambda: T0)
    head.complete_from_ns = T0 - 300 * NS
    head.add(_rows(rnd, series, T0 - np.arange(0, 10)[::-1] * 10 * NS, frac=1.0))
    ids = np.array([s.id for s in series], np.uint64)
    for k in (3, 30):
        pick = rnd.choice(ids, k, replace=False)
        a = head.read_hist(pick, T0 - 300 * NS, T0 + NS)
        b = head.read_hist(np.sort(pick), T0 - 300 * NS, T0 + NS)
        assert _canon(a) == _canon(b) and set(a.series_id.tolist()) == set(pick.tolist())
