"""Selecting series of samples kept as Prometheus keeps them: native histograms
(exphist.NH) and floats at their own timestamps (series of kind
``KIND_NATIVE``, from ``tocsin rules test`` input in the native-histogram
notation). A source that has them answers ``read_native(ids, lo, hi)`` with
{series id: (timestamps ns, values)}; a value is an NH, a float, or a staleness
marker (a stale NaN float).

Instant selection takes the newest sample in the lookback window, as
Prometheus: a histogram gives a histogram, a float a float, a staleness marker
nothing. Range functions see the floats as a float series and the histograms as
histogram samples (RangeArg.hsamples)."""
from __future__ import annotations

import numpy as np

from collector.query import hist as H
from collector.query import nhmat
from collector.query.loader import FloatData
from collector.query.selectors import NATIVE
from collector.query.stale import is_stale


def read(source, sel, lo_ns: int, hi_ns: int) -> dict:
    ids = np.array(sorted({e.sid for e in sel if e.access == NATIVE}), np.uint64)
    fn = getattr(source, "read_native", None)
    if not len(ids) or fn is None:
        return {}
    return fn(ids, lo_ns, hi_ns)


def _is_hist(v) -> bool:
    return not isinstance(v, float)


def instant(data, times: np.ndarray, lookback_ns: int):
    """(float values, float mask, float sample times) and the HMat of histogram
    samples, one per step (either part None when empty)."""
    ts, vals = data
    S = len(times)
    i = np.searchsorted(ts, times, side="right") - 1
    fv, fm, ft = np.zeros(S), np.zeros(S, bool), np.zeros(S, np.int64)
    nhs: list = [None] * S
    for s in range(S):
        j = int(i[s])
        if j < 0 or ts[j] <= times[s] - lookback_ns:
            continue
        v = vals[j]
        if _is_hist(v):
            nhs[s] = v
        elif not is_stale(np.array([v]))[0]:
            fv[s], fm[s], ft[s] = v, True, ts[j]
    floats = (fv, fm, ft) if fm.any() else None
    hm = nhmat.mat(nhs) if any(h is not None for h in nhs) else None
    return floats, hm


def ranged(data):
    """(FloatData of the float samples or None, (sample times, HMat) of the histogram samples or None)."""
    ts, vals = data
    hmask = np.array([_is_hist(v) for v in vals], bool)
    fd = None
    if (~hmask).any():
        fv = np.array([v for v, h in zip(vals, hmask) if not h], float)
        fd = FloatData(ts[~hmask], fv, is_stale(fv))
    hs = None
    if hmask.any():
        hs = (ts[hmask], nhmat.mat([v for v, h in zip(vals, hmask) if h]))
    return fd, hs


def hseries(labels: dict, m: H.HMat) -> H.HSeries:
    return H.HSeries(labels, mat=m)
