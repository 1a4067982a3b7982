"""Range functions over histogram *samples* (values at their own timestamps):
series kept in Prometheus's native-histogram form (nativesel) and subqueries
over histogram expressions. These follow Prometheus 3 sample by sample:
``rate``/``increase``/``delta`` extrapolate to the window edges as for floats
(histogramRate: counter resets detected bucket by bucket, schemas reduced to
the lowest in the window), ``irate``/``idelta`` use the last two samples,
``resets``/``changes`` count, and the ``*_over_time`` that Prometheus defines
for histograms give histograms or counts.

Histogram values are exphist.NH (exact exponential or custom buckets) or
nhmat.Dense (one step of an HDR/custom HMat); both answer the same methods.
"""
from __future__ import annotations

import numpy as np

from collector import cancel
from collector.model import NS
from collector.query import annotations
from collector.query import exphist as X
from collector.query import hist as H
from collector.query import histrange as HR
from collector.query import nhmat

MS = 1_000_000
SAMPLE_FUNCS = {"rate", "increase", "delta", "irate", "idelta", "resets", "changes"}
OVER_TIME = {"count_over_time", "present_over_time", "last_over_time", "first_over_time", "sum_over_time",
             "avg_over_time"}


def _name(labels: dict) -> str:
    return labels.get("__name__", "")


def _values(mat: H.HMat) -> list:
    if mat.schema == H.EXP:
        return nhmat.steps(mat)
    return [nhmat.from_dense(mat, s) if mat.present[s] else None for s in range(len(mat.present))]


def _to_mat(template: H.HMat, vals: list) -> H.HMat:
    if template.schema == H.EXP:
        return nhmat.mat([v.compact() if v is not None else None for v in vals])
    return nhmat.dense_mat(template, vals)


def handles(func: str, mat: H.HMat) -> bool:
    return func in SAMPLE_FUNCS or (mat.schema == H.EXP and func in OVER_TIME)


def apply(func: str, labels: dict, ts: np.ndarray, mat: H.HMat, T: np.ndarray, w_ns: int):
    """One series: ("float", values, present), ("hist", HMat) or None."""
    S = len(T)
    if mat is None or not len(ts):
        return None
    if func not in SAMPLE_FUNCS and func not in OVER_TIME:
        return HR.apply(func, labels, ts, mat, T, w_ns)
    if mat.schema != H.EXP and func in OVER_TIME:
        return HR.apply(func, labels, ts, mat, T, w_ns)
    vals = _values(mat)
    keep = [i for i, v in enumerate(vals) if v is not None]
    ts = ts[keep]
    vals = [vals[i] for i in keep]
    b = np.searchsorted(ts, T - w_ns, side="right")
    e = np.searchsorted(ts, T, side="right")
    name = _name(labels)
    if func in ("resets", "changes"):
        out = np.zeros(S)
        for s in range(S):
            cancel.check()
            n = 0
            for j in range(b[s] + 1, e[s]):
                cur, prev = vals[j], vals[j - 1]
                try:
                    hit = cur.detect_reset(prev) if func == "resets" else not cur.equals(prev)
                except X.Incompatible:
                    hit = True
                n += bool(hit)
            out[s] = n
        return "float", out, e > b
    if func == "count_over_time":
        return "float", (e - b).astype(float), e > b
    if func == "present_over_time":
        return "float", np.ones(S), e > b
    res: list = [None] * S
    for s in range(S):
        cancel.check()   # each step walks its window's samples in Python
        lo, hi = int(b[s]), int(e[s])
        if hi <= lo:
            continue
        window = vals[lo:hi]
        wts = ts[lo:hi]
        if func == "last_over_time":
            res[s] = window[-1]
        elif func == "first_over_time":
            res[s] = window[0]
        elif func in ("sum_over_time", "avg_over_time"):
            res[s] = _sum(window, name)
            if res[s] is not None and func == "avg_over_time":
                res[s] = res[s].div(float(len(window)))
        elif func in ("irate", "idelta"):
            res[s] = _instant(window, wts, func == "irate", name)
        else:
            res[s] = _extrapolated(window, wts, int(T[s]), w_ns, func != "delta", func == "rate", name)
    if not any(r is not None for r in res):
        return None
    return "hist", _to_mat(mat, res)


def _sum(window: list, name: str):
    acc = window[0].copy()
    try:
        for h in window[1:]:
            acc = acc.add(h, "aggregation") if isinstance(acc, X.NH) else acc.add(h)
    except X.Incompatible:
        annotations.warn(f'vector contains a mix of histograms with exponential and custom buckets schemas '
                         f'for metric name "{name}"')
        return None
    return acc


def _gauge(h):
    if isinstance(h, X.NH):
        h.hint = "gauge"
    return h


def _instant(window: list, wts: np.ndarray, is_rate: bool, name: str):
    if len(window) < 2:
        return None
    last, prev = window[-1], window[-2]
    dt = int(wts[-1] // MS - wts[-2] // MS)
    if dt == 0:
        return None
    if is_rate and (last.hint == "gauge" or prev.hint == "gauge"):
        annotations.warn(f'this native histogram metric is not a counter: "{name}"')
    if not is_rate and (last.hint != "gauge" or prev.hint != "gauge"):
        annotations.warn(f'this native histogram metric is not a gauge: "{name}"')
    out = last.copy()
    try:
        if not is_rate or not last.detect_reset(prev):
            out = last.sub(prev)
    except X.Incompatible:
        annotations.warn(f'vector contains a mix of histograms with exponential and custom buckets schemas '
                         f'for metric name "{name}"')
        return None
    out = _gauge(out.compact())
    if is_rate:
        out = out.div(dt / 1000.0)
    return out


def _hist_rate(points: list, is_counter: bool, name: str):
    """Prometheus's histogramRate: last − first, plus every value before a reset."""
    prev, last = points[0], points[-1]
    if is_counter and (prev.hint == "gauge" or last.hint == "gauge"):
        annotations.warn(f'this native histogram metric is not a counter: "{name}"')
    if is_counter and points[1].detect_reset(prev):
        prev = prev.mul(0.0) if not isinstance(prev, X.NH) else X.NH(schema=points[1].schema,
                                                                      custom=points[1].custom)
    if last.is_custom != prev.is_custom:
        annotations.warn(f'vector contains a mix of histograms with exponential and custom buckets schemas '
                         f'for metric name "{name}"')
        return None
    min_schema = min(last.schema, prev.schema)
    for cur in points[1:-1]:
        if not is_counter:
            continue
        if cur.hint == "gauge":
            annotations.warn(f'this native histogram metric is not a counter: "{name}"')
        min_schema = min(min_schema, cur.schema)
        if cur.is_custom != last.is_custom:
            annotations.warn(f'vector contains a mix of histograms with exponential and custom buckets schemas '
                             f'for metric name "{name}"')
            return None
    try:
        h = last.to_schema(min_schema) if isinstance(last, X.NH) else last.copy()
        h = h.sub(prev)
        if is_counter:
            for cur in points[1:]:
                if cur.detect_reset(prev):
                    h = h.add(prev)
                prev = cur
        elif points[0].hint != "gauge" or points[-1].hint != "gauge":
            annotations.warn(f'this native histogram metric is not a gauge: "{name}"')
    except X.Incompatible:
        annotations.warn(f'vector contains a mix of histograms with exponential and custom buckets schemas '
                         f'for metric name "{name}"')
        return None
    return _gauge(h.compact())


def _extrapolated(window: list, wts: np.ndarray, t_ns: int, w_ns: int, is_counter: bool, is_rate: bool,
                  name: str):
    """Prometheus's extrapolatedRate for histogram samples."""
    if len(window) < 2:
        return None
    h = _hist_rate(window, is_counter, name)
    if h is None:
        return None
    first_t, last_t = int(wts[0] // MS), int(wts[-1] // MS)
    t_ms = t_ns // MS
    range_start, range_end = t_ms - w_ns // MS, t_ms
    to_start = (first_t - range_start) / 1000.0
    to_end = (range_end - last_t) / 1000.0
    sampled = (last_t - first_t) / 1000.0
    avg = sampled / (len(window) - 1)
    threshold = avg * 1.1
    if to_start >= threshold:
        to_start = avg / 2
    if is_counter and h.count > 0 and window[0].count >= 0:
        to_zero = sampled * (window[0].count / h.count)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled if sampled else 1.0
    if is_rate:
        factor /= w_ns / NS
    out = h.mul(factor)
    return _gauge(out)

