"""Instant-vector functions: math, clamping, labels, sorting, histograms."""
from __future__ import annotations

import math
import re

import numpy as np

from collector import cancel
from collector.query import annotations
from collector.query import hist as H
from collector.query.seriesnotation import format_value
from collector.query.errors import BadData
from collector.query.regex import compile_anchored, expand
from collector.query.values import Scalar, String, Vec, drop_name, lkey

_MATH = {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "sqrt": np.sqrt, "exp": np.exp, "ln": np.log,
    "log2": np.log2, "log10": np.log10, "sgn": np.sign, "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh, "deg": np.degrees, "rad": np.radians,
}


def math_fn(name: str, v: Vec) -> Vec:
    v.floats_only(f"{name}()")
    with np.errstate(all="ignore"):
        r = _MATH[name](v.vals)
    return Vec([drop_name(l) for l in v.labels], r, v.mask.copy())


def clamp(name: str, v: Vec, args: list) -> Vec:
    """Go's math.Max/Min: a NaN bound or value gives NaN; clamp with min > max is empty."""
    v.floats_only(f"{name}()")
    vals = v.vals
    mask = v.mask.copy()
    with np.errstate(invalid="ignore"):
        if name == "clamp":
            lo, hi = args[0].vals[None, :], args[1].vals[None, :]
            r = np.maximum(lo, np.minimum(hi, vals))
            mask &= ~(lo > hi)
        elif name == "clamp_min":
            r = np.maximum(vals, args[0].vals[None, :])
        else:
            r = np.minimum(vals, args[0].vals[None, :])
    return Vec([drop_name(l) for l in v.labels], r, mask)


def round_fn(v: Vec, args: list) -> Vec:
    v.floats_only("round()")
    to = args[0].vals if args else np.ones(v.vals.shape[1])
    inv = 1.0 / to
    with np.errstate(all="ignore"):
        r = np.floor(v.vals * inv + 0.5) / inv
    return Vec([drop_name(l) for l in v.labels], r, v.mask.copy())


def _dedupe(labels: list[dict], vals, mask, what: str) -> None:
    seen: dict[tuple, int] = {}
    for i, l in enumerate(labels):
        k = lkey(l)
        if k in seen and (mask[seen[k]] & mask[i]).any():
            from collector.query.errors import Unprocessable
            raise Unprocessable(f"vector cannot contain metrics with the same labelset ({what})")
        seen.setdefault(k, i)


def label_replace(v: Vec, dst: str, repl: str, src: str, regex: str) -> Vec:
    try:
        rx = compile_anchored(regex)
    except BadData as e:
        raise BadData(f"label_replace(): {e}") from None
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", dst) and dst != "__name__":
        raise BadData(f"invalid destination label name in label_replace(): {dst!r}")

    def relabel(l: dict) -> dict:
        m = rx.fullmatch(l.get(src, ""))
        if m is None:
            return dict(l)
        out = dict(l)
        val = expand(repl, m)
        if val:
            out[dst] = val
        else:
            out.pop(dst, None)
        return out

    return _relabel(v, relabel, "label_replace")


def label_join(v: Vec, dst: str, sep: str, srcs: list[str]) -> Vec:
    def relabel(l: dict) -> dict:
        out = dict(l)
        val = sep.join(l.get(s, "") for s in srcs)
        if val:
            out[dst] = val
        else:
            out.pop(dst, None)
        return out

    return _relabel(v, relabel, "label_join")


def _relabel(v: Vec, fn, what: str) -> Vec:
    labels = [fn(l) for l in v.labels]
    _dedupe(labels, v.vals, v.mask, what)
    hists = [H.HSeries(fn(h.labels), h.raw, h.win, h.mat) for h in v.hists]
    return Vec(labels, v.vals, v.mask, hists)


def scalar_of(v: Vec) -> Scalar:
    v.floats_only("scalar()")
    S = v.vals.shape[1]
    one = v.mask.sum(axis=0) == 1
    val = np.where(v.mask, v.vals, 0.0).sum(axis=0) if len(v.labels) else np.zeros(S)
    return Scalar(np.where(one, val, np.nan))


def absent_labels(matcher_sets) -> dict[str, str]:
    """absent()'s output labels: a label named by exactly one matcher, an
    equality matcher, keeps its value (as Prometheus); any other is left out."""
    if len(matcher_sets) != 1:
        return {}
    seen: dict[str, int] = {}
    out: dict[str, str] = {}
    for name, op, value in matcher_sets[0]:
        if name == "__name__":
            continue
        seen[name] = seen.get(name, 0) + 1
        if op == "=":
            out[name] = value
    return {k: v for k, v in out.items() if seen[k] == 1}


# -- histograms ---------------------------------------------------------------------------------

def _le(text: str) -> float | None:
    try:
        return float(text.strip().lower().replace("+inf", "inf"))
    except ValueError:
        return None


def _classic(v: Vec, fname: str) -> list[H.HSeries]:
    """Float series with an ``le`` label (classic bucket counters) as custom-bucket
    histograms, per group of the other labels (``__name__`` aside), as Prometheus:
    buckets with the same bound written differently (``0.2``, ``2e-1``) are added
    up, counts that differ by float noise (≤ 1e-12 relative) are evened out, and a
    count below an earlier bucket's is raised to it (with an info annotation)."""
    groups: dict[tuple, tuple[dict, dict[float, list[int]], str]] = {}
    for i, l in enumerate(v.labels):
        cancel.check()
        le = _le(l["le"]) if "le" in l else None
        if le is None:
            if v.mask[i].any():
                annotations.warn(f'bucket label "le" is missing or has a malformed value of "{l.get("le", "")}" '
                                 f'for metric name "{l.get("__name__", "")}"')
            continue
        # Buckets of two metric names are two histograms (whose results then
        # collide on their labels, an error as in Prometheus), never one.
        g = {k: x for k, x in l.items() if k not in ("le", "__name__")}
        entry = groups.setdefault(lkey(g) + (("__name__", l.get("__name__", "")),), (g, {}, l.get("__name__", "")))
        entry[1].setdefault(le, []).append(i)
    out = []
    S = v.vals.shape[1]
    for g, by_le, name in groups.values():
        cancel.check()
        keys = np.array(sorted(by_le))
        cum = np.zeros((S, len(keys)))
        present = np.zeros(S, bool)
        for k, le in enumerate(keys):
            rows = by_le[le]
            m = v.mask[rows]
            cum[:, k] = np.where(m, v.vals[rows], 0.0).sum(axis=0)
            present |= m.any(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            for k in range(1, len(keys)):   # float noise between neighbours (correctPrecisionErrors)
                prev, cur = cum[:, k - 1], cum[:, k]
                noise = (cur != prev) & (np.abs(cur - prev) / cur <= 1e-12)
                cum[:, k] = np.where(noise, prev, cur)
        mono = np.maximum.accumulate(cum, axis=1)
        if (present & (mono != cum).any(axis=1)).any():
            annotations.info(f"input to {fname} needed to be fixed for monotonicity (see "
                             "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)"
                             + (f' for metric name "{name}"' if name else ""))
        counts = np.diff(mono, axis=1, prepend=0.0)
        if not np.isinf(keys[-1]) or len(keys) < 2:   # no +Inf bucket, or only it: NaN, as Prometheus
            counts[:] = 0.0
            mono[:] = 0.0
        mat = H.HMat(H.CUSTOM, keys, counts, mono[:, -1], np.zeros(S), present, np.ones(S))
        out.append(H.HSeries(g, mat=mat))
    return out


def _check_q(q: np.ndarray) -> None:
    bad = q[np.isnan(q) | (q < 0) | (q > 1)]
    if len(bad):
        annotations.warn(f"quantile value should be between 0 and 1, got {format_value(float(bad[0]))}")


def histogram_fn(name: str, v: Vec, args: list, max_cells: int) -> Vec:
    S = v.vals.shape[1]
    series = list(v.hists)
    if name == "histogram_quantile":
        _check_q(args[0].vals)
    if name in ("histogram_quantile", "histogram_fraction") and len(v.labels):
        series += _classic(v, name)
    labels, vals, masks = [], [], []
    if name == "histogram_quantile" and S == 1 and len(series) > 1:
        # Many series at one time (rule groups, instant queries): vectorized across them.
        lazy = [h for h in series if h.mat is None and h.raw is not None and h.raw.schema == H.HDR
                and h.win is not None]
        if len(lazy) > 1 and all(h.win is lazy[0].win for h in lazy):
            r, present = H.quantile_instant_many([h.raw for h in lazy], lazy[0].win, float(args[0].vals[0]))
            for i, h in enumerate(lazy):
                labels.append(drop_name(h.labels))
                vals.append(r[i:i + 1])
                masks.append(present[i:i + 1])
            done = {id(h) for h in lazy}
            series = [h for h in series if id(h) not in done]
    for h in series:
        cancel.check()
        if h.mat is None and h.raw is not None and h.win is not None:
            # Not materialized yet: count, sum and HDR quantiles need no dense bucket matrix.
            if name in ("histogram_count", "histogram_sum", "histogram_avg"):
                c, sm, present = H.totals(h.raw, h.win)
                with np.errstate(all="ignore"):
                    r = c * h.win.scale if name == "histogram_count" else (
                        sm * h.win.scale if name == "histogram_sum" else sm / c)
                labels.append(drop_name(h.labels))
                vals.append(r)
                masks.append(present)
                continue
            if name == "histogram_quantile" and h.raw.schema == H.HDR:
                r, present = H.quantile_lazy(h.raw, h.win, args[0].vals, max_cells)
                labels.append(drop_name(h.labels))
                vals.append(r)
                masks.append(present)
                continue
        m = h.get(max_cells)
        if name == "histogram_quantile":
            r = H.quantile(m, args[0].vals, h.labels.get("__name__", ""))
        elif name == "histogram_count":
            r = m.count * m.scale
        elif name == "histogram_sum":
            r = m.sum * m.scale
        elif name == "histogram_avg":
            with np.errstate(all="ignore"):
                r = m.sum / m.count
        elif name == "histogram_fraction":
            r = H.fraction(m, args[0].vals, args[1].vals, h.labels.get("__name__", ""))
        elif name == "histogram_stdvar":
            r = H.variance(m)
        elif name == "histogram_stddev":
            r = np.sqrt(H.variance(m))
        else:
            raise BadData(f"function {name}() is not supported")
        labels.append(drop_name(h.labels))
        vals.append(r)
        masks.append(m.present.copy())
    return Vec.of(labels, vals, masks, S)


def date_fn(name: str, v: Vec | None, T: np.ndarray) -> Vec:
    import datetime as dt

    if v is None:
        labels, secs, mask = [{}], (T / 1e9)[None, :], np.ones((1, len(T)), bool)
    else:
        v.floats_only(f"{name}()")
        labels, secs, mask = [drop_name(l) for l in v.labels], v.vals, v.mask
    out = np.full(secs.shape, np.nan)
    for idx in zip(*np.nonzero(mask & np.isfinite(secs))):
        d = dt.datetime.fromtimestamp(float(secs[idx]), dt.timezone.utc)
        out[idx] = {
            "minute": d.minute, "hour": d.hour, "month": d.month, "year": d.year, "day_of_month": d.day,
            "day_of_week": d.isoweekday() % 7, "day_of_year": d.timetuple().tm_yday,
            "days_in_month": (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1).__sub__(
                dt.timedelta(days=1)).day,
        }[name]
    return Vec(labels, out, mask.copy())


__all__ = ["math_fn", "clamp", "round_fn", "label_replace", "label_join", "scalar_of", "absent_labels",
           "histogram_fn", "date_fn", "String", "math"]
