"""Compensated float summation, as Prometheus 3 does it.

Prometheus adds with Kahan–Neumaier compensation in ``sum``, ``avg``, ``stddev``,
``stdvar`` and the ``*_over_time`` functions that add, and its averages do not
overflow (a running mean takes over when the sum would reach ±Inf). Here the
same arithmetic runs over numpy arrays: an aggregation adds the i-th member of
every group at every step in one vectorised step; a range function adds window
samples exactly (``math.fsum``, correctly rounded — never less accurate than
Kahan) unless the values are integers whose running total is exact anyway.
"""
from __future__ import annotations

import math

import numpy as np

_EXACT = float(2 ** 53)


def kahan_inc(inc: np.ndarray, s: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One Neumaier step on arrays: (new sum, new compensation). Once the sum is
    infinite the compensation is dropped (it would only turn Inf into NaN)."""
    with np.errstate(all="ignore"):
        t = s + inc
        big = np.abs(s) >= np.abs(inc)
        c2 = c + np.where(big, (s - t) + inc, (inc - t) + s)
    return t, np.where(np.isinf(t), 0.0, c2)


def _ranks(gid: np.ndarray) -> np.ndarray:
    """The position of each row within its group, in row order."""
    order = np.argsort(gid, kind="stable")
    g = gid[order]
    first = np.r_[0, np.nonzero(g[1:] != g[:-1])[0] + 1] if len(g) else np.zeros(0, np.int64)
    starts = np.repeat(first, np.diff(np.r_[first, len(g)]))
    rank = np.empty(len(gid), np.int64)
    rank[order] = np.arange(len(gid)) - starts
    return rank


def group_sum(vals: np.ndarray, mask: np.ndarray, gid: np.ndarray, G: int) -> np.ndarray:
    """Per group and step, the compensated sum of the present values (rows in
    order, as Prometheus adds them). (n, S) → (G, S)."""
    S = vals.shape[1]
    s = np.zeros((G, S))
    c = np.zeros((G, S))
    if not len(gid):
        return s
    rank = _ranks(gid)
    for r in range(int(rank.max()) + 1):
        rows = np.nonzero(rank == r)[0]
        g = gid[rows]      # distinct within one rank
        inc = np.where(mask[rows], vals[rows], 0.0)
        ns, nc = kahan_inc(inc, s[g], c[g])
        m = mask[rows]
        s[g] = np.where(m, ns, s[g])
        c[g] = np.where(m, nc, c[g])
    with np.errstate(all="ignore"):
        return np.where(np.isinf(s), s, s + c)


def group_avg(vals: np.ndarray, mask: np.ndarray, gid: np.ndarray, G: int, cnt: np.ndarray) -> np.ndarray:
    """The mean per group and step. Where the sum overflows although no value is
    infinite, the mean is the compensated sum of value/count instead (finite,
    as Prometheus's running mean)."""
    tot = group_sum(vals, mask, gid, G)
    with np.errstate(all="ignore"):
        mean = tot / cnt
        inf_in = np.zeros((G, vals.shape[1]), bool)
        np.logical_or.at(inf_in, gid, mask & np.isinf(vals))
        over = np.isinf(tot) & ~inf_in
        if over.any():
            scaled = vals / cnt[gid]
            mean = np.where(over, group_sum(scaled, mask, gid, G), mean)
    return mean


def exact_cumsum_ok(v: np.ndarray) -> bool:
    """True when every running total of ``v`` is exact in float64 (integers whose
    absolute sum stays below 2**53): then differences of a cumsum equal the
    compensated sums bit for bit."""
    if not len(v):
        return True
    if not np.isfinite(v).all():
        return False
    with np.errstate(over="ignore"):
        total = np.abs(v).sum()
    return bool(total < _EXACT and (np.floor(v) == v).all())


def fsum(x: np.ndarray) -> float:
    """The correctly rounded sum; ±Inf on overflow, NaN for +Inf + -Inf."""
    try:
        return math.fsum(x.tolist())
    except OverflowError:
        with np.errstate(all="ignore"):
            return float(np.sum(x))
    except ValueError:   # -inf + inf
        return math.nan


def mean(x: np.ndarray) -> float:
    """Average without overflow: the exact sum / n, or the sum of x/n when the sum
    of finite values leaves the float range."""
    n = len(x)
    s = fsum(x)
    if math.isinf(s) and np.isfinite(x).all():
        return fsum(x / n)
    return s / n


def _one_sign(v: np.ndarray) -> bool:
    """Finite values of one sign: no cancellation, so a plain sum is within
    n ulps of the exact one (as close as Kahan's in Prometheus's test tolerance)."""
    return bool(np.isfinite(v).all() and ((v >= 0).all() or (v <= 0).all()))


def _plain_window_sums(v: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    out = np.full(len(b), np.nan)
    ok = e > b
    if ok.any():
        with np.errstate(over="ignore"):
            # reduceat adds each window on its own (no prefix-sum differences)
            sums = np.add.reduceat(np.append(v, 0.0), np.ravel(np.column_stack([b[ok], e[ok]])))[::2]
        out[ok] = sums
    return out


_SHORT = 64   # windows up to this many samples: Neumaier vectorised over steps


def _kahan_window_sums(v: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Prometheus's compensated sum of every window at once: the j-th sample of
    every window is added in one numpy step."""
    n = e - b
    s = np.zeros(len(b))
    c = np.zeros(len(b))
    last = len(v) - 1
    for j in range(int(n.max(initial=0))):
        ok = n > j
        x = np.where(ok, v[np.minimum(b + j, last)], 0.0)
        ns, nc = kahan_inc(x, s, c)
        s = np.where(ok, ns, s)
        c = np.where(ok, nc, c)
    with np.errstate(invalid="ignore"):
        out = np.where(np.isinf(s), s, s + c)
    return np.where(n > 0, out, np.nan)


def window_sums(v: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Sum of v[b:e] per step (NaN for an empty window)."""
    if exact_cumsum_ok(v):
        c = np.zeros(len(v) + 1)
        np.cumsum(v, out=c[1:])
        return np.where(e > b, c[np.minimum(e, len(v))] - c[np.minimum(b, len(v))], np.nan)
    if _one_sign(v):
        return _plain_window_sums(v, b, e)
    if len(b) > 1 and int((e - b).max(initial=0)) <= _SHORT:
        return _kahan_window_sums(v, b, e)
    out = np.full(len(b), np.nan)
    for i, (x, y) in enumerate(zip(b.tolist(), e.tolist())):
        if y > x:
            out[i] = fsum(v[x:y])
    return out


def window_means(v: np.ndarray, b: np.ndarray, e: np.ndarray) -> np.ndarray:
    if exact_cumsum_ok(v) or (_one_sign(v) and np.abs(v).max(initial=0.0) < 1e300) or \
            (len(b) > 1 and int((e - b).max(initial=0)) <= _SHORT and np.abs(v).max(initial=0.0) < 1e300):
        n = e - b
        with np.errstate(all="ignore"):
            return window_sums(v, b, e) / n
    out = np.full(len(b), np.nan)
    for i, (x, y) in enumerate(zip(b.tolist(), e.tolist())):
        if y > x:
            out[i] = mean(v[x:y])
    return out


def variance(x: np.ndarray) -> float:
    """Population variance, two passes over an exact mean."""
    if not len(x):
        return math.nan
    m = mean(x)
    if not math.isfinite(m):
        return math.nan
    d = x - m
    return fsum(d * d) / len(x)
