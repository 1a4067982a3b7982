"""Histogram values in the engine: raw delta rows of one (or several merged)
series, turned into per-step window totals only when needed.

Rows are deltas per slot; a slot belongs to the window (t-w, t] when its END is
in it. A window total is exact: cumulative sums over the slot ends, taken at the
window edges (no extrapolation). Keys are HDR counts indices (schema "hdr") or
the sender's bucket upper bounds, +Inf included (schema "custom").
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from collector import cancel
from collector.aggregate import hdr
from collector.query.errors import BadData

HDR = "hdr"
CUSTOM = "custom"
EXP = "exp"   # exact native histograms, one exphist.NH per step (see nhmat.py)


@dataclass
class HistRaw:
    schema: str
    row_end: np.ndarray    # int64 ns, slot end per row
    row_count: np.ndarray  # float64
    row_sum: np.ndarray    # float64
    row_live: np.ndarray   # float64: 1 for a stored slot, 0 for padding rows (custom bounds)
    row_len: np.ndarray    # int64: entries per row; entries are in row order
    ent_key: np.ndarray    # HDR: the rows' int32 indices as they are; custom: float64 upper bounds
    ent_cnt: np.ndarray    # HDR: int64 counts; custom: float64

    @staticmethod
    def concat(raws: list["HistRaw"]) -> "HistRaw":
        schemas = {r.schema for r in raws}
        if len(schemas) > 1:
            raise BadData("cannot combine HDR histograms with custom-bucket histograms")
        c = np.concatenate
        return HistRaw(raws[0].schema, c([r.row_end for r in raws]), c([r.row_count for r in raws]),
                       c([r.row_sum for r in raws]), c([r.row_live for r in raws]), c([r.row_len for r in raws]),
                       c([r.ent_key for r in raws]), c([r.ent_cnt for r in raws]))


@dataclass(frozen=True, eq=False)
class Window:
    """How raw rows become one value per step. ``w_ns`` None: cumulative since the
    first stored slot, present while a slot ended within the lookback."""

    T: np.ndarray
    w_ns: int | None
    lookback_ns: int
    scale: float = 1.0


@dataclass
class HMat:
    """One histogram per step: ``counts[s, k]`` for bucket ``keys[k]``."""

    schema: str
    keys: np.ndarray
    counts: np.ndarray   # (S, K), unscaled
    count: np.ndarray    # (S,), unscaled
    sum: np.ndarray      # (S,), unscaled
    present: np.ndarray  # (S,) bool
    scale: np.ndarray    # (S,) multiply counts, count and sum by this to get the value


def _window_totals(ends: np.ndarray, weights: np.ndarray, B: np.ndarray, hi: np.ndarray,
                   lo: np.ndarray | None) -> np.ndarray:
    """Sum of weights with end in (B[lo], B[hi]] (or ≤ B[hi] when lo is None), per step."""
    bins = np.searchsorted(B, ends, side="left")
    tot = np.bincount(bins, weights=weights, minlength=len(B) + 1)
    cum = np.cumsum(tot)
    out = cum[hi]
    return out - cum[lo] if lo is not None else out


def _unique_keys(raw: HistRaw) -> tuple[np.ndarray, np.ndarray]:
    if raw.schema == HDR and len(raw.ent_key):
        # HDR indices are small non-negative integers: a bincount beats sorting.
        ik = raw.ent_key.astype(np.int64)
        used = np.bincount(ik) > 0
        keys = np.nonzero(used)[0]
        pos = np.cumsum(used) - 1
        return keys.astype(np.float64), pos[ik]
    return np.unique(raw.ent_key, return_inverse=True)


def _grid(win: Window) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The window edges as bins: (B, lo, hi, plo) — a row counts at step s when its
    end's bin is in (lo[s], hi[s]] (≤ hi[s] when lo is None); present when one is in (plo, hi]."""
    T = win.T
    if win.w_ns is None:
        B = np.unique(np.concatenate([T - win.lookback_ns, T]))
        lo = None
        plo = np.searchsorted(B, T - win.lookback_ns)
    else:
        B = np.unique(np.concatenate([T - win.w_ns, T]))
        lo = plo = np.searchsorted(B, T - win.w_ns)
    return B, lo, plo, np.searchsorted(B, T)


def totals(raw: HistRaw, win: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, sum, present) per step, unscaled, without the bucket matrix
    (histogram_count, histogram_sum and histogram_avg need no buckets)."""
    B, lo, plo, hi = _grid(win)
    count = _window_totals(raw.row_end, raw.row_count, B, hi, lo)
    total = _window_totals(raw.row_end, raw.row_sum, B, hi, lo)
    present = _window_totals(raw.row_end, raw.row_live, B, hi, plo) > 0
    count[~present] = 0
    total[~present] = 0
    return count, total, present


def materialize(raw: HistRaw, win: Window, max_cells: int) -> HMat:
    T = win.T
    B, lo, plo, hi = _grid(win)
    keys, kpos = _unique_keys(raw)
    K = len(keys)
    cells = (len(B) + 1) * max(K, 1)
    if cells > max_cells:
        from collector.query.errors import Unprocessable
        raise Unprocessable(f"query processing would load too many samples into memory ({cells} histogram cells)")
    cancel.check_memory()   # each window matrix is allocated below the memory soft limit, or not at all
    bins = np.repeat(np.searchsorted(B, raw.row_end, side="left"), raw.row_len)
    dense = np.bincount(bins * K + kpos, weights=raw.ent_cnt, minlength=(len(B) + 1) * K).reshape(len(B) + 1, K)
    cum = np.cumsum(dense, axis=0)
    counts = cum[hi] - cum[lo] if lo is not None else cum[hi]
    count, total, present = totals(raw, win)
    counts[~present] = 0
    return HMat(raw.schema, keys, counts, count, total, present, np.full(len(T), win.scale))


# Keys per block of the sparse quantile's first pass: HDR has 128 keys per doubling.
_BLOCK_SHIFT = 5


def quantile_lazy(raw: HistRaw, win: Window, q: np.ndarray, max_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """histogram_quantile of an HDR series not yet materialized: (values, present).
    The same answer as ``quantile(materialize(...))`` with far less work: window
    totals per block of 32 keys find the block holding the rank at each step, and
    only that block's keys are counted exactly (from per-key cumulative sums over
    the rows), instead of a dense (bins × keys) matrix summed twice."""
    S = len(win.T)
    B, lo, plo, hi = _grid(win)
    count, _total, present = totals(raw, win)
    out = np.full(S, np.nan)
    if not len(raw.ent_key):
        return out, present
    NB = len(B) + 1
    key = raw.ent_key if raw.ent_key.dtype.kind in "iu" else raw.ent_key.astype(np.int64)
    cnt = raw.ent_cnt
    bins = np.repeat(np.searchsorted(B, raw.row_end, side="left"), raw.row_len)
    blk = key >> _BLOCK_SHIFT
    nblk = int(blk.max()) + 1
    if NB * nblk > max_cells:
        from collector.query.errors import Unprocessable
        raise Unprocessable(f"query processing would load too many samples into memory ({NB * nblk} histogram cells)")
    cancel.check_memory()
    coarse = np.cumsum(np.bincount(bins * nblk + blk, weights=cnt, minlength=NB * nblk).reshape(NB, nblk), axis=0)
    wc = coarse[hi] - coarse[lo] if lo is not None else coarse[hi]        # (S, nblk)
    cum = np.cumsum(wc, axis=1)
    total = cum[:, -1]
    ok = present & (total > 0) & (win.scale > 0)
    rank = np.maximum(1.0, np.ceil(np.round(q * total, 9)))
    b = np.argmax(cum >= rank[:, None] - 1e-9, axis=1)                   # the block holding the rank
    before = np.where(b > 0, cum[np.arange(S), np.maximum(b - 1, 0)], 0.0)
    # Exact counts of the keys of the blocks chosen at some step: per key, a running sum
    # over the bins (a dense matrix of those few blocks only), read at the window edges.
    width = 1 << _BLOCK_SHIFT
    chosen = np.unique(b[ok])
    if not len(chosen):
        return out, present
    bpos = np.full(nblk, -1, np.int64)
    bpos[chosen] = np.arange(len(chosen))
    sel = bpos[blk] >= 0
    col = bpos[blk[sel]] * width + (key[sel] & (width - 1))
    C = len(chosen) * width
    run = np.cumsum(np.bincount(col * NB + bins[sel], weights=cnt[sel], minlength=C * NB).reshape(C, NB), axis=1)
    rows = np.maximum(bpos[b], 0)[:, None] * width + np.arange(width)[None, :]     # (S, 32)
    upto = run[rows, hi[:, None]]
    if lo is not None:
        upto = upto - run[rows, lo[:, None]]
    keys = (b << _BLOCK_SHIFT)[:, None] + np.arange(width)[None, :]
    fine = before[:, None] + np.cumsum(upto, axis=1)
    j = np.argmax(fine >= rank[:, None] - 1e-9, axis=1)
    val = hdr.mid_seconds(keys[np.arange(S), j])
    out = np.where(ok, val, np.nan)
    out = np.where(ok & (q < 0), -math.inf, out)
    out = np.where(ok & (q > 1), math.inf, out)
    return np.where(ok & np.isnan(q), np.nan, out), present


DENSE_KEYS_MAX = 4_000_000


def quantile_instant_many(raws: list[HistRaw], win: Window, q: float) -> tuple[np.ndarray, np.ndarray]:
    """histogram_quantile at one evaluation time of many HDR series not yet
    materialized (a rule group's or an instant query's), vectorized across them:
    (values, present) per series, the answers of ``quantile(materialize(...))``.
    Entries of the rows in the window are sorted by (series, key) once; a running
    sum over all of them, less each series' base, finds every series' rank with one
    binary search."""
    G = len(raws)
    T = int(win.T[0])
    out = np.full(G, np.nan)
    if not G:
        return out, np.zeros(0, bool)
    ends = np.concatenate([r.row_end for r in raws])
    live = np.concatenate([r.row_live for r in raws])
    lens = np.concatenate([r.row_len for r in raws])
    nrows = np.array([len(r.row_end) for r in raws])
    row_g = np.repeat(np.arange(G), nrows)
    lo = T - (win.w_ns if win.w_ns is not None else win.lookback_ns)
    inw = (ends > lo) & (ends <= T)
    present = np.bincount(row_g[inw], weights=live[inw], minlength=G) > 0
    counted = inw if win.w_ns is not None else ends <= T       # no window: everything up to T
    ent_in = np.repeat(counted, lens)
    key = np.concatenate([r.ent_key for r in raws])[ent_in].astype(np.int64)
    cnt = np.concatenate([r.ent_cnt for r in raws])[ent_in]
    ent_g = np.repeat(row_g, lens)[ent_in]
    if not len(key):
        return out, present
    comp = ent_g * hdr.COUNTS_LEN + key
    if G * hdr.COUNTS_LEN <= DENSE_KEYS_MAX:   # counting beats sorting while the key space is small
        per = np.bincount(comp, weights=cnt, minlength=G * hdr.COUNTS_LEN)
        u = np.nonzero(per)[0]
        per = per[u]
    else:
        u, inv = np.unique(comp, return_inverse=True)
        per = np.bincount(inv, weights=cnt, minlength=len(u))
    ug = u // hdr.COUNTS_LEN
    run = np.cumsum(per)
    first = np.searchsorted(ug, np.arange(G), "left")
    last = np.searchsorted(ug, np.arange(G), "right")
    has = last > first
    base = np.where(first > 0, run[np.maximum(first - 1, 0)], 0.0)
    total = np.where(has, run[np.maximum(last - 1, 0)] - base, 0.0)
    ok = present & has & (total > 0) & (win.scale > 0)
    rank = np.maximum(1.0, np.ceil(np.round(q * total, 9)))
    # First entry of the series whose running count reaches the rank (within 1e-9, as quantile()).
    pos = np.searchsorted(run, base + rank - 1e-9, "left")
    pos = np.clip(pos, first, np.maximum(last - 1, first))
    pos = np.minimum(pos, len(u) - 1)
    val = hdr.mid_seconds(u[pos] % hdr.COUNTS_LEN)
    out = np.where(ok, val, np.nan)
    if q < 0:
        out = np.where(ok, -math.inf, out)
    elif q > 1:
        out = np.where(ok, math.inf, out)
    elif math.isnan(q):
        out = np.where(ok, np.nan, out)
    return out, present


@dataclass
class HSeries:
    labels: dict[str, str]
    raw: HistRaw | None = None
    win: Window | None = None
    mat: HMat | None = field(default=None, repr=False)

    def get(self, max_cells: int) -> HMat:
        if self.mat is None:
            return materialize(self.raw, self.win, max_cells)
        return self.mat


def merge_series(series: list[HSeries], labels: dict[str, str], max_cells: int) -> HSeries:
    """The exact sum of histograms (HDR counts add bucket by bucket)."""
    lazy = [s for s in series if s.mat is None and s.win is not None and s.win.w_ns is not None]
    if len(series) == 1 and lazy:
        return HSeries(labels, series[0].raw, series[0].win)
    if len(lazy) == len(series) and len({id(s.win) for s in series}) == 1:
        return HSeries(labels, HistRaw.concat([s.raw for s in series]), series[0].win)
    mats = [s.get(max_cells) for s in series]
    return HSeries(labels, mat=add_mats(mats))


def scaled(h: HSeries, f, max_cells: int) -> HSeries:
    """h × f (a number or one per step), name dropped as arithmetic does."""
    m = h.get(max_cells)
    labels = {k: v for k, v in h.labels.items() if k != "__name__"}
    return HSeries(labels, mat=HMat(m.schema, m.keys, m.counts, m.count, m.sum, m.present, m.scale * f))


def add_mats(mats: list[HMat], context: str = "aggregation") -> HMat:
    if mats[0].schema == EXP and all(m.schema == EXP for m in mats):
        from collector.query import nhmat
        return nhmat.add_mats(mats, context)
    if len({m.schema for m in mats}) > 1:
        raise BadData("cannot combine HDR histograms with custom-bucket histograms")
    keys = mats[0].keys
    for m in mats[1:]:
        keys = np.union1d(keys, m.keys)
    S = len(mats[0].count)
    same_scale = all(np.array_equal(m.scale, mats[0].scale) for m in mats)
    counts = np.zeros((S, len(keys)))
    count = np.zeros(S)
    total = np.zeros(S)
    present = np.zeros(S, bool)
    for m in mats:
        f = 1.0 if same_scale else m.scale
        pos = np.searchsorted(keys, m.keys)
        counts[:, pos] += m.counts * (f if same_scale else f[:, None])
        count += m.count * f
        total += m.sum * f
        present |= m.present
    scale = mats[0].scale if same_scale else np.ones(S)
    return HMat(mats[0].schema, keys, counts, count, total, present, scale.copy())


# -- functions of a histogram, per step ---------------------------------------------------------

def variance(m: HMat) -> np.ndarray:
    """histogram_stdvar: the variance of the observations, each taken at its
    bucket's middle (HDR buckets are < 1 % wide, so this is close to exact;
    explicit buckets use the middle of (previous bound, bound], the +Inf bucket
    its lower bound)."""
    if m.schema == EXP:
        from collector.query import nhmat
        return nhmat.variance(m)
    S = len(m.count)
    if len(m.keys) == 0:
        return np.full(S, np.nan)
    if m.schema == HDR:
        x = hdr.mid_seconds(m.keys.astype(np.int64))
    else:
        upper = m.keys.astype(float)
        lower = np.concatenate([[0.0], upper[:-1]])
        x = np.where(np.isinf(upper), lower, (lower + upper) / 2)
    total = m.counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (m.counts * x).sum(axis=1) / total
        var = (m.counts * (x[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
    return np.where(m.present & (total > 0), var, np.nan)


def quantile(m: HMat, q: np.ndarray, name: str = "") -> np.ndarray:
    """histogram_quantile: HDR nearest rank at the bucket middle; custom buckets
    by Prometheus's classic linear interpolation."""
    if m.schema == EXP:
        from collector.query import nhmat
        return nhmat.quantile(m, np.broadcast_to(q, m.present.shape), name)
    S = len(m.count)
    out = np.full(S, np.nan)
    if len(m.keys) == 0:
        return out
    cum = np.cumsum(m.counts, axis=1)
    total = cum[:, -1]
    ok = m.present & (total > 0) & (m.scale > 0)
    if m.schema == HDR:
        # Nearest rank: the first non-empty bucket whose cumulative count reaches
        # q·total (for integer counts the same as ceil(q·total); counts of a rate
        # over histogram samples are fractional).
        rank = q * total
        pos = np.argmax((cum >= (rank * (1 - 1e-12))[:, None]) & (cum > 0), axis=1)
        val = hdr.mid_seconds(m.keys[pos].astype(np.int64))
    else:
        rank = q * total
        pos = np.argmax(cum >= rank[:, None] - 1e-9 * np.maximum(total, 1)[:, None], axis=1)
        keys = m.keys
        upper = keys[pos]
        prev_key = np.where(pos > 0, keys[np.maximum(pos - 1, 0)], 0.0)
        prev_cum = np.where(pos > 0, cum[np.arange(S), np.maximum(pos - 1, 0)], 0.0)
        in_bucket = cum[np.arange(S), pos] - prev_cum
        frac = np.divide(rank - prev_cum, in_bucket, out=np.ones(S), where=in_bucket > 0)
        val = prev_key + (upper - prev_key) * frac
        val = np.where((pos == 0) & (upper <= 0), upper, val)
        finite_last = keys[-2] if len(keys) > 1 else np.nan
        val = np.where(np.isinf(upper), np.where(pos > 0, finite_last if np.isinf(keys[-1]) else np.nan, np.nan),
                       val)
    out = np.where(ok, val, np.nan)
    out = np.where(ok & (q < 0), -math.inf, out)
    out = np.where(ok & (q > 1), math.inf, out)
    return np.where(ok & np.isnan(q), np.nan, out)


def bucket_edges(m: HMat) -> tuple[np.ndarray, np.ndarray]:
    if m.schema == HDR:
        k = m.keys.astype(np.int64)
        return hdr.lower_seconds(k), hdr.upper_seconds(k)
    lower = np.concatenate([[0.0 if len(m.keys) and m.keys[0] > 0 else -math.inf], m.keys[:-1]])
    return lower, m.keys


def fraction(m: HMat, lower: np.ndarray, upper: np.ndarray, name: str = "") -> np.ndarray:
    """histogram_fraction: share of observations in [lower, upper], values spread
    evenly inside a bucket (as hdr.fraction_below)."""
    if m.schema == EXP:
        from collector.query import nhmat
        return nhmat.fraction(m, lower, upper, name)
    lo, hi = bucket_edges(m)
    lower = np.asarray(lower, float)[:, None]
    upper = np.asarray(upper, float)[:, None]
    width = hi - lo
    a = np.clip(np.maximum(lo, lower), lo, hi)
    b = np.clip(np.minimum(hi, upper), lo, hi)
    with np.errstate(invalid="ignore"):
        part = np.where(np.isfinite(width) & (width > 0), np.clip(b - a, 0, None) / np.where(width > 0, width, 1),
                        np.where(upper >= hi, 1.0, 0.0) * (lower <= lo))
    part = np.nan_to_num(part, nan=0.0)
    total = m.counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (m.counts * part).sum(axis=1) / total
    return np.where(m.present & (total > 0), out, np.nan)


def to_json(m: HMat, s: int, fmt) -> dict:
    """One step's histogram in the Prometheus API's native-histogram shape."""
    if m.schema == EXP:
        from collector.query import nhmat
        return nhmat.to_json(m, s, fmt)
    sc = m.scale[s]
    row = m.counts[s]
    nz = np.nonzero(row)[0]
    lo, hi = bucket_edges(m)
    rule = 1 if m.schema == HDR else 0  # HDR buckets are [lo, hi); custom (lo, hi]
    buckets = [[rule, fmt(float(lo[k])), fmt(float(hi[k])), fmt(float(row[k] * sc))] for k in nz]
    return {"count": fmt(float(m.count[s] * sc)), "sum": fmt(float(m.sum[s] * sc)), "buckets": buckets}
