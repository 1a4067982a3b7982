"""Exact native histograms (exphist.NH) inside the engine's per-step HMat.

An HMat of schema ``EXP`` holds one NH (or None) per step in ``keys`` (an object
array) and no dense counts; ``count``/``sum`` mirror the NHs so the generic code
(histogram_count, histogram_sum, presence masks, scaling) works unchanged, and
``scale`` multiplies as for the other schemas. Everything that looks at buckets
comes here (hist.py dispatches on the schema).
"""
from __future__ import annotations

import math

import numpy as np

from collector.query import annotations
from collector.query import exphist as X
from collector.query import hist as H

EXP = H.EXP


def mat(nhs: list) -> H.HMat:
    S = len(nhs)
    keys = np.empty(S, object)
    present = np.zeros(S, bool)
    count, total = np.zeros(S), np.zeros(S)
    for s, h in enumerate(nhs):
        keys[s] = h
        if h is not None:
            present[s] = True
            count[s], total[s] = h.count, h.sum
    return H.HMat(EXP, keys, np.zeros((S, 0)), count, total, present, np.ones(S))


def at(m: H.HMat, s: int):
    """Step s's histogram with the scale applied, or None (a negative factor
    makes a gauge histogram, as Prometheus's unary minus)."""
    if not m.present[s]:
        return None
    h = m.keys[s]
    if h is None:
        return None
    f = float(m.scale[s])
    if f == 1.0:
        return h
    out = h.mul(f)
    if f < 0:
        out.hint = "gauge"
    return out


def steps(m: H.HMat) -> list:
    return [at(m, s) for s in range(len(m.present))]


def add_mats(mats: list[H.HMat], context: str = "aggregation") -> H.HMat:
    """Step by step sum (Prometheus's aggregation Add: schemas reduced to the
    lowest, zero buckets reconciled). Exponential and custom buckets together
    give no result at that step, with Prometheus's warning."""
    S = len(mats[0].present)
    out = []
    for s in range(S):
        acc = None
        bad = False
        for m in mats:
            h = at(m, s)
            if h is None:
                continue
            try:
                acc = h.copy() if acc is None else acc.add(h, context)
            except X.Incompatible:
                bad = True
                break
        if bad:
            annotations.warn("vector contains a mix of histograms with exponential and custom buckets schemas "
                             "for metric name \"\"")
            acc = None
        out.append(acc.compact() if acc is not None else None)
    return mat(out)


def per_step(m: H.HMat, fn) -> np.ndarray:
    S = len(m.present)
    out = np.full(S, np.nan)
    for s in range(S):
        h = at(m, s)
        if h is not None:
            out[s] = fn(h, s)
    return out


def quantile(m: H.HMat, q: np.ndarray, name: str = "") -> np.ndarray:
    def one(h, s):
        v = h.quantile(float(q[s]))
        if h.nan_observations():
            how = "NaN" if math.isnan(v) else "skewed higher"
            annotations.info(f'input to histogram_quantile has NaN observations, result is {how} '
                             f'for metric name "{name}"')
        return v
    return per_step(m, one)


def fraction(m: H.HMat, lower: np.ndarray, upper: np.ndarray, name: str = "") -> np.ndarray:
    lo, hi = np.broadcast_to(lower, m.present.shape), np.broadcast_to(upper, m.present.shape)

    def one(h, s):
        if h.nan_observations():
            annotations.info(f'input to histogram_fraction has NaN observations, which are excluded from all '
                             f'fractions for metric name "{name}"')
        return h.fraction(float(lo[s]), float(hi[s]))
    return per_step(m, one)


def variance(m: H.HMat) -> np.ndarray:
    return per_step(m, lambda h, s: h.variance())


def to_json(m: H.HMat, s: int, fmt) -> dict:
    h = at(m, s)
    return h.to_api(lambda x: fmt(float(x)))


def from_dense(m: H.HMat, s: int):
    """A dense (HDR or custom-bound) step as a Dense value for the sample functions."""
    f = float(m.scale[s])
    return Dense(m.schema, m.keys, m.counts[s] * f, float(m.count[s]) * f, float(m.sum[s]) * f)


class Dense:
    """One step of a dense HMat with the NH protocol used by histsamples
    (copy/add/sub/mul/div/detect_reset/equals/count/hint)."""

    hint = "unknown"
    schema = 0
    is_custom = False

    def __init__(self, kind, keys, counts, count, total):
        self.kind, self.keys, self.counts, self.count, self.sum = kind, keys, counts, count, total

    def copy(self):
        return Dense(self.kind, self.keys, self.counts.copy(), self.count, self.sum)

    def _comb(self, o, sign):
        return Dense(self.kind, self.keys, self.counts + sign * o.counts, self.count + sign * o.count,
                     self.sum + sign * o.sum)

    def add(self, o):
        return self._comb(o, 1.0)

    def sub(self, o):
        return self._comb(o, -1.0)

    def mul(self, f):
        return Dense(self.kind, self.keys, self.counts * f, self.count * f, self.sum * f)

    def div(self, f):
        return self.mul(1.0 / f) if f else Dense(self.kind, self.keys, np.zeros_like(self.counts),
                                                 X._div0(self.count), X._div0(self.sum))

    def compact(self):
        return self

    def detect_reset(self, prev) -> bool:
        return self.count < prev.count or bool((self.counts < prev.counts).any())

    def equals(self, o) -> bool:
        same = (self.count == o.count or (math.isnan(self.count) and math.isnan(o.count)))
        return bool(same and (self.sum == o.sum or (math.isnan(self.sum) and math.isnan(o.sum)))
                    and np.array_equal(self.counts, o.counts))


def dense_mat(template: H.HMat, vals: list) -> H.HMat:
    """Dense values (or None) per step back into an HMat with the template's keys."""
    S = len(vals)
    K = len(template.keys)
    counts, count, total, present = np.zeros((S, K)), np.zeros(S), np.zeros(S), np.zeros(S, bool)
    for s, v in enumerate(vals):
        if v is not None:
            counts[s], count[s], total[s], present[s] = v.counts, v.count, v.sum, True
    return H.HMat(template.schema, template.keys, counts, count, total, present, np.ones(S))


def as_nh(m: H.HMat, s: int):
    """Step s of any HMat as an exphist.NH (for printing and comparing in the
    notation): exponential ones as they are; custom-bound and HDR ones as a
    custom-bucket histogram over their bucket upper bounds."""
    if m.schema == EXP:
        return at(m, s)
    if not m.present[s]:
        return None
    f = float(m.scale[s])
    _, upper = H.bucket_edges(m)
    finite = [float(u) for u in upper if not math.isinf(u)]
    pos = {}
    for k, u in enumerate(upper):
        c = float(m.counts[s, k]) * f
        if c:
            pos[finite.index(float(u)) if not math.isinf(u) else len(finite)] = c
    return X.NH(schema=X.CUSTOM_SCHEMA, count=float(m.count[s]) * f, sum=float(m.sum[s]) * f, pos=pos,
                custom=tuple(finite))


def divided(m: H.HMat, divisor: np.ndarray) -> H.HMat:
    """Step by step h / d (Prometheus's Div: dividing by zero leaves count, sum and
    zero bucket at ±Inf or NaN and removes every other bucket)."""
    d = np.broadcast_to(np.asarray(divisor, float), m.present.shape)
    return mat([h.div(float(d[s])) if h is not None else None for s, h in enumerate(steps(m))])
