"""Range functions of histogram samples (``*_over_time``, also over subqueries),
as Prometheus 3 defines them for native histograms.

A stored histogram series is a cumulative histogram sampled at each slot end
(what a bare selector answers at that time); a subquery's samples are its
histogram results at the subquery's steps. ``count_over_time``,
``present_over_time``, ``last_over_time``, ``first_over_time``, ``sum_over_time``
and ``avg_over_time`` give histograms (or counts) as Prometheus; the functions
that only take floats (``max_over_time``, ``quantile_over_time``, ``deriv``, …)
give no sample for a histogram series (Prometheus ignores histogram samples there).
"""
from __future__ import annotations

import numpy as np

from collector.query import hist as H

HIST_OVER_TIME = {"count_over_time", "present_over_time", "last_over_time", "first_over_time",
                  "sum_over_time", "avg_over_time"}
FLOAT_ONLY = {"max_over_time", "min_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
              "mad_over_time", "deriv", "predict_linear", "double_exponential_smoothing", "ts_of_max_over_time",
              "ts_of_min_over_time", "idelta", "delta", "irate"}


def samples_of(h: H.HSeries, max_cells: int) -> tuple[np.ndarray, H.HMat]:
    """(sample times, one histogram per sample) of a stored histogram series."""
    raw = h.raw
    ends = np.unique(raw.row_end[raw.row_live > 0])
    if not len(ends):
        return ends, None
    far = int(ends[-1] - ends[0]) + 1
    mat = H.materialize(raw, H.Window(ends, None, far), max_cells)
    return ends, mat


def apply(func: str, labels: dict, ts: np.ndarray, mat: H.HMat | None, T: np.ndarray, w_ns: int):
    """One series: ("float", values, present) or ("hist", HMat) or None."""
    S = len(T)
    if mat is None or not len(ts):
        return None
    keep = mat.present
    ts, counts, count, total, scale = ts[keep], mat.counts[keep], mat.count[keep], mat.sum[keep], mat.scale[keep]
    counts = counts * scale[:, None]
    count, total = count * scale, total * scale
    b = np.searchsorted(ts, T - w_ns, side="right")
    e = np.searchsorted(ts, T, side="right")
    n = e - b
    has = n > 0
    if func == "count_over_time":
        return "float", n.astype(float), has
    if func == "present_over_time":
        return "float", np.ones(S), has
    if func in ("last_over_time", "first_over_time"):
        i = np.clip(e - 1 if func == "last_over_time" else b, 0, max(len(ts) - 1, 0))
        return "hist", H.HMat(mat.schema, mat.keys, counts[i], count[i], total[i], has, np.ones(S))
    if func in ("sum_over_time", "avg_over_time"):
        def win(x):
            c = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
            return c[e] - c[b]
        wc, wn, ws = win(counts), win(count), win(total)
        div = np.where(has, n, 1).astype(float) if func == "avg_over_time" else np.ones(S)
        return "hist", H.HMat(mat.schema, mat.keys, wc / div[:, None], wn / div, ws / div, has, np.ones(S))
    return None
