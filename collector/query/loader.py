"""Reading a selector's data once for a whole query: float samples per series,
histogram rows per series (as HistRaw), and histogram rows' count/sum as
delta-backed counters."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector import cancel
from collector.model import KIND_CUSTOM, NS, HistRows
from collector.query import classic
from collector.query.hist import CUSTOM, HDR, HistRaw
from collector.query.selectors import COUNT, FLOAT, Exposed
from collector.query.stale import is_stale

MAX_RES_NS = 3600 * NS  # the coarsest stored resolution: a slot ending in a window starts up to this before it


@dataclass
class FloatData:
    ts: np.ndarray      # int64 ns
    vals: np.ndarray
    stale: np.ndarray   # bool


@dataclass
class DeltaData:
    """A counter backed by histogram rows: per slot end, the delta."""

    ends: np.ndarray
    deltas: np.ndarray


def _split(sid_sorted: np.ndarray) -> dict[int, slice]:
    if len(sid_sorted) == 0:
        return {}
    u, first = np.unique(sid_sorted, return_index=True)
    bounds = list(first) + [len(sid_sorted)]
    return {int(s): slice(bounds[i], bounds[i + 1]) for i, s in enumerate(u)}


def read_floats(source, sel: list[Exposed], lo_ns: int, hi_ns: int) -> tuple[dict[int, FloatData], int]:
    ids = np.array(sorted({e.sid for e in sel if e.access == FLOAT}), np.uint64)
    if not len(ids):
        return {}, 0
    rows = source.read_samples(ids, lo_ns, hi_ns)
    order = np.lexsort((rows.ts, rows.series_id))
    sid, ts, v = rows.series_id[order], rows.ts[order], rows.value[order]
    out = {}
    for s, sl in _split(sid).items():
        cancel.check()
        out[s] = FloatData(ts[sl], v[sl], is_stale(v[sl]))
    return out, len(ts)


def _slice(rows: HistRows, a: int, b: int) -> HistRows:
    """Rows [a, b) as views (no copy)."""
    o = rows.offsets[a:b + 1]
    return HistRows(rows.series_id[a:b], rows.ts[a:b], rows.res[a:b], rows.count[a:b], rows.sum[a:b],
                    rows.min[a:b], rows.max[a:b], o - o[0], rows.idx[o[0]:o[-1]], rows.cnt[o[0]:o[-1]],
                    rows.bounds[a:b] if rows.bounds else ())


class PerSeries:
    """Rows grouped by series, each series' rows cut out only when asked for."""

    def __init__(self, rows: HistRows):
        sid = rows.series_id
        if len(sid) > 1 and not (sid[1:] >= sid[:-1]).all():
            rows = rows.take(np.argsort(sid, kind="stable"))
        self.rows = rows
        self.slices = _split(rows.series_id)
        self._memo: dict[int, HistRows] = {}
        self._raw: tuple | None = None

    def __contains__(self, sid: int) -> bool:
        return sid in self.slices

    def get(self, sid: int, default=None) -> HistRows | None:
        return self[sid] if sid in self.slices else default

    def __getitem__(self, sid: int) -> HistRows:
        got = self._memo.get(sid)
        if got is None:
            sl = self.slices[sid]
            got = self._memo[sid] = _slice(self.rows, sl.start, sl.stop)
        return got

    def raw(self, sid: int, kind: str, now_ns: int) -> HistRaw:
        """``to_raw(self[sid], kind, now_ns)``; for HDR rows a view of one HistRaw
        made for all the rows at once (no per-series conversion)."""
        if kind == KIND_CUSTOM or self.rows.bounds:
            return to_raw(self[sid], kind, now_ns)
        if self._raw is None or self._raw[0] != now_ns:
            self._raw = (now_ns, to_raw(self.rows, kind, now_ns))
        r = self._raw[1]
        sl = self.slices[sid]
        a, b = sl.start, sl.stop
        o = self.rows.offsets
        return HistRaw(r.schema, r.row_end[a:b], r.row_count[a:b], r.row_sum[a:b], r.row_live[a:b], r.row_len[a:b],
                       r.ent_key[o[a]:o[b]], r.ent_cnt[o[a]:o[b]])


def _per_series(rows: HistRows) -> dict[int, HistRows]:
    g = PerSeries(rows)
    return {s: g[s] for s in g.slices}


def read_hist(source, sel: list[Exposed], lo_ns: int, hi_ns: int, min_end_ns: int | None = None,
              cache=None, coarsest_res: int | None = None, buckets: bool = True,
              grouped: bool = False) -> tuple[dict[int, HistRows], int]:
    """Rows of the selected series starting in [lo_ns, hi_ns); with ``min_end_ns``,
    rows ending at or before it are not needed (the source may skip them); with
    ``coarsest_res``, rolled-up rows up to that resolution give the same answer
    (see ``rollup_resolution``) and the source may read them instead.
    ``cache`` (a readcache.HistReadCache) shares windowed reads between queries.
    ``buckets`` false: only count and sum are needed (the source may leave the
    bucket lists out: most of the bytes read). ``grouped``: the PerSeries itself
    instead of a dict (it may hold more series than asked for)."""
    ids = np.unique(np.fromiter((e.sid for e in sel if e.access != FLOAT), np.uint64))
    if not len(ids):
        return {}, 0

    def read(want):
        if getattr(source, "reads_by_slot_end", False):
            kw = {} if buckets else {"buckets": False}
            if min_end_ns is not None:
                kw.update(min_end_ns=min_end_ns, coarsest_res=coarsest_res)
            return source.read_hist(want, lo_ns, hi_ns, **kw)
        return source.read_hist(want, lo_ns, hi_ns)

    in_memory = getattr(source, "in_memory", None)
    if cache is not None and in_memory is not None and min_end_ns is not None and in_memory(lo_ns, min_end_ns):
        # The head holds the window: read just these series (cheaper than all of them),
        # once per batch; rows with buckets serve a read that needs none as well.
        key = (ids.tobytes(), lo_ns, hi_ns, min_end_ns, coarsest_res)
        got = cache.memo.get(key + (True,)) or cache.memo.get(key + (buckets,))
        if got is None:
            got = cache.memo[key + (buckets,)] = PerSeries(read(ids))
        if grouped:
            return got, len(got.rows) + int(got.rows.offsets[-1])
        out = {int(s): got[int(s)] for s in ids.tolist() if int(s) in got}
        return out, sum(len(r) + int(r.offsets[-1]) for r in out.values())
    if cache is not None and min_end_ns is not None:
        shared = cache.get((lo_ns, hi_ns, min_end_ns, coarsest_res, buckets), read, PerSeries)
        if shared is not None and grouped:
            return shared, len(shared.rows) + int(shared.rows.offsets[-1])
        if shared is not None:
            out = {int(s): shared[int(s)] for s in ids.tolist() if int(s) in shared}
            return out, sum(len(r) + int(r.offsets[-1]) for r in out.values())
    rows = read(ids)
    if grouped:
        return PerSeries(rows), len(rows) + int(rows.offsets[-1])
    return _per_series(rows), len(rows) + int(rows.offsets[-1])


# Cells of one (series × window edges) matrix of the bulk counter paths; more series are done in chunks.
BULK_CELLS = 2_000_000


def bulk_counters(per: "PerSeries", sel: list[Exposed], edges: np.ndarray, now_ns: int
                  ) -> tuple[list[Exposed], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Histogram rows' count or sum (``sel``: COUNT/SUM access) of every selected
    series at once, per window edge: for series i and edge j, ``upto[i, j]`` is the
    total of the slots ending at or before ``edges[j]``, ``n[i, j]`` how many there
    are and ``last[i, j]`` the latest such slot end (0 for none); ``edges`` sorted.
    Returns (the series with rows, upto, n, last, first end) — one numpy pass over
    the rows instead of per-series objects (100 000 series in a query)."""
    rows = per.rows
    sids = np.fromiter((x.sid for x in sel), np.uint64, len(sel))
    is_count = np.fromiter((x.access == COUNT for x in sel), bool, len(sel))
    want = np.unique(sids)
    if not len(rows) or not len(want):
        z = np.zeros((0, len(edges)))
        return [], z, z, z.astype(np.int64), np.zeros(0, np.int64)
    pos = np.minimum(np.searchsorted(want, rows.series_id), len(want) - 1)
    keep = want[pos] == rows.series_id
    ends_all = slot_ends(rows, now_ns)
    has_rows = np.zeros(len(want), bool)
    has_rows[pos[keep]] = True
    of_sel = np.searchsorted(want, sids)          # each selected series' place in want
    # the answer's order: series with rows, counts first, then sums
    order = np.concatenate([np.nonzero(has_rows[of_sel] & is_count)[0], np.nonzero(has_rows[of_sel] & ~is_count)[0]])
    n_e = len(edges) + 1
    per_chunk = max(1, BULK_CELLS // n_e)
    first = np.full(len(want), np.iinfo(np.int64).max)
    np.minimum.at(first, pos[keep], ends_all[keep])
    vals_by = {True: rows.count.astype(np.float64), False: rows.sum.astype(np.float64)}
    uptos, counts, lasts = [], [], []
    for a in range(0, len(order), per_chunk):
        cancel.check()
        chunk = order[a:a + per_chunk]
        for counted in (True, False):
            part = chunk[is_count[chunk] == counted]
            if not len(part):
                continue
            slot = np.full(len(want), -1, np.int64)
            slot[of_sel[part]] = np.arange(len(part))
            r = keep & (slot[pos] >= 0)
            g = slot[pos[r]]
            bins = np.searchsorted(edges, ends_all[r], side="left")   # bin j: edges[j-1] < end <= edges[j]
            cell = g * n_e + bins
            tot = np.bincount(cell, weights=vals_by[counted][r], minlength=len(part) * n_e).reshape(len(part), n_e)
            cnt = np.bincount(cell, minlength=len(part) * n_e).reshape(len(part), n_e)
            last = np.zeros(len(part) * n_e, np.int64)
            np.maximum.at(last, cell, ends_all[r])
            last = np.maximum.accumulate(last.reshape(len(part), n_e), axis=1)
            uptos.append(np.cumsum(tot, axis=1)[:, :-1])
            counts.append(np.cumsum(cnt, axis=1)[:, :-1])
            lasts.append(last[:, :-1])
    # ``order`` has every count before every sum, so within each chunk the counts'
    # block and then the sums' block are in ``order``'s order already
    up, cn, la = (np.vstack(x) if x else np.zeros((0, len(edges))) for x in (uptos, counts, lasts))
    ordered = [sel[i] for i in order.tolist()]
    return ordered, up, cn, la.astype(np.int64), first[of_sel[order]]


def rollup_resolution(times: np.ndarray, window_ns: int) -> int | None:
    """The coarsest rollup (60 s, 3600 s) whose slots give exactly the same sums as
    10 s slots for these windows: when the window and every evaluation time are
    multiples of it, a slot of it ends in a window exactly when all its 10 s slots
    do. Used only when steps are at least that far apart (else no rows are saved)."""
    for res in (3600, 60):
        r = res * NS
        if window_ns % r == 0 and not (times % r).any() and (len(times) < 2 or int(np.diff(times).min()) >= r):
            return res
    return None


def slot_ends(rows: HistRows, now_ns: int) -> np.ndarray:
    """When each slot counts: its end, or its start for a slot still open (read
    your writes: what was acknowledged is visible to a query at ``now``, even when
    the caller's ``now`` was taken a moment before ours)."""
    ends = rows.ts + rows.res.astype(np.int64) * NS
    open_ = ends > now_ns
    if open_.any():
        ends = np.where(open_, rows.ts, ends)
    return ends


def to_raw(rows: HistRows, kind: str, now_ns: int) -> HistRaw:
    ends = slot_ends(rows, now_ns)
    lens = np.diff(rows.offsets)
    n = len(rows)
    count, total = rows.count.astype(np.float64), rows.sum.astype(np.float64)
    if kind != KIND_CUSTOM:
        return HistRaw(HDR, ends, count, total, np.ones(n), lens, rows.idx, rows.cnt)   # no copies of the entries
    keys = np.zeros(len(rows.idx))
    ent_row = np.repeat(np.arange(n), lens)
    pad: list[np.ndarray] = []
    by_bounds: dict[tuple, list[int]] = {}
    for i, b in enumerate(rows.bounds or [None] * n):
        by_bounds.setdefault(tuple(b or ()), []).append(i)
    for b, members in by_bounds.items():
        ub = np.array(list(b) + [np.inf])
        sel = np.isin(ent_row, members)
        keys[sel] = ub[rows.idx[sel]]
        # A padding row with every bound at count 0, so interpolation sees the real bucket edges.
        pad.append(ub)
    z = np.zeros(len(pad))
    return HistRaw(CUSTOM, np.concatenate([ends, np.full(len(pad), ends.min())]), np.concatenate([count, z]),
                   np.concatenate([total, z]), np.concatenate([np.ones(n), z]),
                   np.concatenate([lens, [len(p) for p in pad]]).astype(np.int64),
                   np.concatenate([keys] + pad), np.concatenate([rows.cnt.astype(np.float64)] +
                                                                [np.zeros(len(p)) for p in pad]))


def to_delta(rows: HistRows, access: str, now_ns: int) -> DeltaData:
    ends = slot_ends(rows, now_ns)
    if classic.is_bucket(access):   # X_bucket{le}: the count up to le (collector/query/classic.py)
        vals = classic.counts_le(rows, classic.le_of(access))
    else:
        vals = rows.count.astype(np.float64) if access == COUNT else rows.sum.astype(np.float64)
    order = np.argsort(ends, kind="stable")
    return DeltaData(ends[order], vals[order])


def delta_as_cumulative(d: DeltaData) -> FloatData:
    """A delta-backed counter as cumulative samples at the slot ends (read from
    the first stored slot, so values are totals since then)."""
    return FloatData(d.ends, np.cumsum(d.deltas), np.zeros(len(d.ends), bool))
