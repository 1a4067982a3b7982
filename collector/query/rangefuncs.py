"""Functions of a range vector for float series, all steps at once: each step's
window (t-w, t] is the slice [b, e) of the series' sorted samples."""
from __future__ import annotations

import math

import numpy as np

from collector.model import NS
from collector.query import kahan as K
from collector.query.errors import BadData
from collector.query.loader import DeltaData, FloatData

MS = 1_000_000


def windows(ts: np.ndarray, T: np.ndarray, w_ns: int) -> tuple[np.ndarray, np.ndarray]:
    return np.searchsorted(ts, T - w_ns, side="right"), np.searchsorted(ts, T, side="right")


def _cum(x: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x) + 1)
    np.cumsum(x, out=out[1:])
    return out


def _extrapolated(ts, v, b, e, T, w_ns, is_counter: bool, is_rate: bool):
    n = e - b
    ok = n >= 2
    bb, ee = np.where(ok, b, 0), np.where(ok, e - 1, 0)
    if len(v) == 0:
        return np.full(len(T), np.nan), ok
    first, last = v[bb], v[ee]
    result = last - first
    if is_counter:
        prev = np.concatenate([[0.0], v[:-1]])
        reset = np.where(v < prev, prev, 0.0)
        reset[0] = 0.0
        c = _cum(reset)  # c[i] = resets among samples 0..i-1
        result = result + (c[ee + 1] - c[bb + 1])
    t0 = ts[bb] // MS
    t1 = ts[ee] // MS
    Tms = T // MS
    with np.errstate(divide="ignore", invalid="ignore"):
        dstart = (t0 - (Tms - w_ns // MS)) / 1000.0
        dend = (Tms - t1) / 1000.0
        sampled = (t1 - t0) / 1000.0
        avg = sampled / np.maximum(n - 1, 1)
        thr = avg * 1.1
        dstart = np.where(dstart >= thr, avg / 2, dstart)
        if is_counter:
            dzero = sampled * (first / result)
            use = (result > 0) & (first >= 0) & (dzero < dstart)
            dstart = np.where(use, dzero, dstart)
        dend = np.where(dend >= thr, avg / 2, dend)
        result = result * ((sampled + dstart + dend) / sampled)
        if is_rate:
            result = result / (w_ns / NS)
    return result, ok


def _loop(v, b, e, fn):
    out = np.full(len(b), np.nan)
    for i, (x, y) in enumerate(zip(b.tolist(), e.tolist())):
        if y > x:
            out[i] = fn(v[x:y])
    return out


def _linreg(ts, v, b, e, at_ms):
    """slope and intercept (at at_ms) of a least-squares line, per step."""
    slope = np.full(len(b), np.nan)
    icpt = np.full(len(b), np.nan)
    for i, (x, y) in enumerate(zip(b.tolist(), e.tolist())):
        if y - x < 2:
            continue
        tx = (ts[x:y] // MS - at_ms[i]) / 1000.0
        vy = v[x:y]
        if np.all(vy == vy[0]):
            slope[i], icpt[i] = 0.0, vy[0]
            continue
        n = y - x
        sx, sy = tx.sum(), vy.sum()
        cov = (tx * vy).sum() - sx * sy / n
        var = (tx * tx).sum() - sx * sx / n
        slope[i] = cov / var
        icpt[i] = sy / n - slope[i] * sx / n
    return slope, icpt


def _quantile(q: float, x: np.ndarray) -> float:
    """Prometheus's quantile: NaN values sort first (as Go's sort does) and take
    part in the interpolation."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    nan = np.isnan(x)
    s = np.concatenate([x[nan], np.sort(x[~nan])]) if nan.any() else np.sort(x)
    n = len(s)
    rank = q * (n - 1)
    lo = max(0, int(math.floor(rank)))
    hi = min(n - 1, lo + 1)
    w = rank - math.floor(rank)
    return float(s[lo] * (1 - w) + s[hi] * w)


def _smooth(v, b, e, sf: np.ndarray, tf: np.ndarray) -> np.ndarray:
    """double_exponential_smoothing (Holt's linear method), as Prometheus: level
    starts at the first sample, trend at the first difference."""
    out = np.full(len(b), np.nan)
    for i, (x, y) in enumerate(zip(b.tolist(), e.tolist())):
        if y - x < 2:
            continue
        a, t = float(sf[i]), float(tf[i])
        s0, s1 = 0.0, float(v[x])
        tr = float(v[x + 1]) - float(v[x])
        for j in range(1, y - x):
            if j > 1:
                tr = t * (s1 - s0) + (1 - t) * tr
            s0, s1 = s1, a * float(v[x + j]) + (1 - a) * (s1 + tr)
        out[i] = s1
    return out


def _stdvar(x):
    return K.variance(x)


RANGE_FUNCS = {"rate", "increase", "delta", "irate", "idelta", "resets", "changes", "deriv", "predict_linear",
               "avg_over_time", "sum_over_time", "min_over_time", "max_over_time", "count_over_time",
               "last_over_time", "first_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
               "present_over_time", "mad_over_time", "absent_over_time", "double_exponential_smoothing",
               "ts_of_max_over_time", "ts_of_min_over_time", "ts_of_last_over_time", "ts_of_first_over_time"}

KEEP_NAME = {"last_over_time", "first_over_time"}


def eval_float(func: str, fd: FloatData, T: np.ndarray, w_ns: int, params: list) -> tuple[np.ndarray, np.ndarray]:
    """(values, present) per step for one float series."""
    keep = ~fd.stale
    ts, v = (fd.ts[keep], fd.vals[keep]) if not keep.all() else (fd.ts, fd.vals)
    b, e = windows(ts, T, w_ns)
    n = e - b
    has = n > 0
    if func in ("rate", "increase", "delta"):
        return _extrapolated(ts, v, b, e, T, w_ns, func != "delta", func == "rate")
    if func in ("irate", "idelta"):
        ok = n >= 2
        if not ok.any():
            return np.full(len(T), np.nan), ok
        i1 = np.where(ok, e - 1, 1)
        i0 = i1 - 1
        last, prev = v[i1], v[i0]
        if func == "idelta":
            return last - prev, ok
        d = np.where(last < prev, last, last - prev)
        dt = (ts[i1] // MS - ts[i0] // MS) / 1000.0
        with np.errstate(divide="ignore", invalid="ignore"):
            return d / dt, ok & (dt > 0)
    if func in ("resets", "changes"):
        if len(v) < 2:
            return np.zeros(len(T)), has
        if func == "resets":
            ind = (v[1:] < v[:-1]).astype(float)
        else:
            ind = ((v[1:] != v[:-1]) & ~(np.isnan(v[1:]) & np.isnan(v[:-1]))).astype(float)
        c = _cum(ind)  # c[i] = events between samples 0..i
        bb = np.minimum(b, len(v) - 1)
        ee = np.maximum(e - 1, 0)
        return np.where(has, c[ee] - c[bb], 0.0), has
    if func == "count_over_time":
        return n.astype(float), has
    if func == "present_over_time":
        return np.ones(len(T)), has
    if func == "last_over_time":
        return v[np.maximum(e - 1, 0)] if len(v) else np.full(len(T), np.nan), has
    if func == "first_over_time":
        return v[np.minimum(b, len(v) - 1)] if len(v) else np.full(len(T), np.nan), has
    if func == "sum_over_time":
        return K.window_sums(v, b, e), has
    if func == "avg_over_time":
        return K.window_means(v, b, e), has
    if func == "min_over_time":
        return _loop(v, b, e, lambda x: float(np.nanmin(x)) if not np.isnan(x).all() else math.nan), has
    if func == "max_over_time":
        return _loop(v, b, e, lambda x: float(np.nanmax(x)) if not np.isnan(x).all() else math.nan), has
    if func == "stddev_over_time":
        return _loop(v, b, e, lambda x: math.sqrt(_stdvar(x))), has
    if func == "stdvar_over_time":
        return _loop(v, b, e, _stdvar), has
    if func == "mad_over_time":
        return _loop(v, b, e, lambda x: _quantile(0.5, np.abs(x - _quantile(0.5, x)))), has
    if func == "quantile_over_time":
        q = params[0]
        out = np.full(len(T), np.nan)
        for i, (x, y) in enumerate(zip(b.tolist(), e.tolist())):
            if y > x:
                out[i] = _quantile(float(q[i]), v[x:y])
        return out, has
    if func == "double_exponential_smoothing":
        return _smooth(v, b, e, params[0], params[1]), n >= 2
    if func == "ts_of_last_over_time":
        return np.where(has, ts[np.maximum(e - 1, 0)] / NS if len(ts) else np.nan, np.nan), has
    if func == "ts_of_first_over_time":
        return np.where(has, ts[np.minimum(b, max(len(ts) - 1, 0))] / NS if len(ts) else np.nan, np.nan), has
    if func in ("ts_of_max_over_time", "ts_of_min_over_time"):
        better = (lambda x, y: x >= y) if func == "ts_of_max_over_time" else (lambda x, y: x <= y)
        out = np.full(len(T), np.nan)
        for i, (x, y) in enumerate(zip(b.tolist(), e.tolist())):
            best, at = math.nan, None
            for j in range(x, y):   # the latest of equal extremes; NaN only until a number comes
                c = float(v[j])
                if at is None or math.isnan(best) or (not math.isnan(c) and better(c, best)):
                    best, at = c, j
            if at is not None:
                out[i] = ts[at] / NS
        return out, has
    if func in ("deriv", "predict_linear"):
        Tms = T // MS
        if func == "deriv":
            at = np.where(n > 0, ts[np.minimum(b, max(len(ts) - 1, 0))] // MS if len(ts) else 0, 0)
            slope, _ = _linreg(ts, v, b, e, at)
            return slope, n >= 2
        # The intercept is at the evaluation time, not at an @ or offset time (as Prometheus).
        at = params[1] // MS if len(params) > 1 else Tms
        slope, icpt = _linreg(ts, v, b, e, at)
        return slope * params[0] + icpt, n >= 2
    raise BadData(f"function {func}() over a range vector is not supported")


def eval_delta(func: str, d: DeltaData, T: np.ndarray, w_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """rate/increase of a delta-backed counter: exact sums of the slots ending in the window."""
    b, e = windows(d.ends, T, w_ns)
    c = _cum(d.deltas)
    total = c[e] - c[b]
    if func == "rate":
        total = total / (w_ns / NS)
    return total, e > b
