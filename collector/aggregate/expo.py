"""OTLP exponential histograms → the HDR layout.

An exponential histogram of scale ``s`` has base ``b = 2**(2**-s)``; positive
bucket ``i`` (absolute index = offset + position) holds values in
``(b**i, b**(i+1)]``. Each bucket's whole count is placed at the HDR index of
its geometric midpoint ``b**(i + 0.5)`` (after converting to seconds).

Precision: the result is never finer than the coarser of the two layouts. At
scale >= 7 an exponential bucket is narrower than an HDR bucket (1/128 wide) and
HDR's < 1 % bound holds; at lower scales the error is up to half an exponential
bucket (scale 0: a factor of sqrt(2) either way), because we cannot know where
inside the bucket the values were. The zero bucket maps to 0; negative buckets
are clamped to 0 and counted (durations cannot be negative).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.aggregate import hdr

MIN_SCALE, MAX_SCALE = -10, 20


@dataclass(frozen=True)
class ExpoPoint:
    """One exponential histogram data point (cumulative or delta), in the sender's unit."""

    scale: int
    zero_count: int
    pos_offset: int
    pos_counts: np.ndarray   # int64
    neg_offset: int
    neg_counts: np.ndarray   # int64
    count: int
    sum: float
    min: float | None = None
    max: float | None = None


def midpoints(scale: int, offset: int, n: int) -> np.ndarray:
    """Geometric midpoints of buckets ``offset .. offset+n-1`` at ``scale``."""
    i = np.arange(offset, offset + n, dtype=np.float64)
    with np.errstate(over="ignore"):
        return np.exp2((i + 0.5) * 2.0 ** -scale)


def to_hdr(p: ExpoPoint, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
    """HDR (idx, cnt) of the point, with values multiplied by ``factor`` to get
    seconds. Also returns how many observations were clamped (negative values
    and values beyond the HDR range)."""
    pos = np.asarray(p.pos_counts, np.int64)
    neg = np.asarray(p.neg_counts, np.int64)
    n_neg = int(neg.sum())
    keep = pos > 0
    values = midpoints(p.scale, p.pos_offset, len(pos))[keep] * factor
    cnt = pos[keep]
    with np.errstate(invalid="ignore"):
        over = ~(np.rint(values * 1e6) <= hdr.HIGHEST_US)
    clamped = n_neg + int(cnt[over].sum())
    idx, _, _ = hdr.index_of_seconds(values)
    zero = p.zero_count + n_neg
    if zero:
        idx = np.append(idx, np.int32(0))
        cnt = np.append(cnt, np.int64(zero))
    merged_idx, merged_cnt = hdr.merge(idx, cnt)
    return merged_idx, merged_cnt, clamped


def downscale(offset: int, counts: np.ndarray, by: int) -> tuple[int, np.ndarray]:
    """Buckets at scale ``s`` → scale ``s - by`` (each new bucket merges 2**by old ones)."""
    counts = np.asarray(counts, np.int64)
    if by <= 0 or len(counts) == 0:
        return offset, counts
    idx = (offset + np.arange(len(counts), dtype=np.int64)) >> by
    out = np.zeros(int(idx[-1] - idx[0]) + 1, np.int64)
    np.add.at(out, idx - idx[0], counts)
    return int(idx[0]), out


def _sub(c_off: int, c: np.ndarray, p_off: int, p: np.ndarray) -> tuple[int, np.ndarray] | None:
    if len(p) == 0:
        return c_off, c
    if len(c) == 0:
        return None if p.any() else (c_off, c)
    lo = min(c_off, p_off)
    hi = max(c_off + len(c), p_off + len(p))
    out = np.zeros(hi - lo, np.int64)
    out[c_off - lo:c_off - lo + len(c)] += c
    out[p_off - lo:p_off - lo + len(p)] -= p
    if (out < 0).any():
        return None
    return lo, out


def subtract(cur: ExpoPoint, prev: ExpoPoint) -> ExpoPoint | None:
    """``cur - prev`` of two cumulative points, at the coarser of their scales;
    None when any count went down (a reset)."""
    scale = min(cur.scale, prev.scale)
    c_pos = downscale(cur.pos_offset, cur.pos_counts, cur.scale - scale)
    p_pos = downscale(prev.pos_offset, prev.pos_counts, prev.scale - scale)
    c_neg = downscale(cur.neg_offset, cur.neg_counts, cur.scale - scale)
    p_neg = downscale(prev.neg_offset, prev.neg_counts, prev.scale - scale)
    pos = _sub(*c_pos, *p_pos)
    neg = _sub(*c_neg, *p_neg)
    zero = cur.zero_count - prev.zero_count
    count = cur.count - prev.count
    if pos is None or neg is None or zero < 0 or count < 0:
        return None
    return ExpoPoint(scale, zero, pos[0], pos[1], neg[0], neg[1], count, cur.sum - prev.sum)
