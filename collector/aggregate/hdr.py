"""The HDR bucket layout, computed in batches with numpy.

Values are recorded in integer microseconds into the counts layout of
``hdrh.histogram.HdrHistogram(1, 3_600_000_000, 2)``: 2 significant digits, so a
value is known to within 1/128 of itself (< 1 %), from 1 µs to 1 h. Our
numpy index equals ``HdrHistogram._counts_index_for`` (tests check it), so a
row of (index, count) pairs can be turned into an ``HdrHistogram`` and encoded in
its standard interchange format at any time.
"""
from __future__ import annotations

import math

import numpy as np

LOWEST_US = 1
HIGHEST_US = 3_600_000_000       # 1 h
SIGNIFICANT_DIGITS = 2
UNIT = 1e-6                      # one count index step is 1 µs at the bottom

_SUB_BUCKET_COUNT_MAG = int(math.ceil(math.log2(2 * 10**SIGNIFICANT_DIGITS)))  # 8
SUB_HALF_MAG = _SUB_BUCKET_COUNT_MAG - 1                                         # 7
SUB_COUNT = 1 << (SUB_HALF_MAG + 1)                                              # 256
SUB_HALF = SUB_COUNT // 2                                                        # 128
SUB_MASK = SUB_COUNT - 1
UNIT_MAG = 0


def _bucket_count(highest: int) -> int:
    smallest_untrackable = SUB_COUNT << UNIT_MAG
    n = 1
    while smallest_untrackable <= highest:
        smallest_untrackable <<= 1
        n += 1
    return n


BUCKET_COUNT = _bucket_count(HIGHEST_US)
COUNTS_LEN = (BUCKET_COUNT + 1) * SUB_HALF
MAX_RELATIVE_ERROR = 1.0 / SUB_HALF   # bucket width / lowest value in it


def to_units(seconds: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Seconds → integer µs clamped to [0, HIGHEST_US]. Returns the values and how
    many were below 0 and above the range (counted by the caller, never lost)."""
    us = np.rint(np.asarray(seconds, dtype=np.float64) * 1e6)
    low = us < 0
    high = ~(us <= HIGHEST_US)  # NaN counts as out of range
    n_low, n_high = int(low.sum()), int(high.sum())
    if n_low or n_high:
        us = us.copy()
        us[low] = 0
        us[high] = HIGHEST_US
    return us.astype(np.int64), n_low, n_high


def index_of_units(us: np.ndarray) -> np.ndarray:
    """HDR counts index of integer µs values (already within range)."""
    v = np.asarray(us, dtype=np.int64) | SUB_MASK
    # 64 - clz(v) == bit length == floor(log2(v)) + 1; frexp gives it exactly for v < 2**53.
    _, exp = np.frexp(v.astype(np.float64))
    bucket = exp.astype(np.int64) - UNIT_MAG - (SUB_HALF_MAG + 1)
    sub = np.asarray(us, dtype=np.int64) >> (bucket + UNIT_MAG)
    return (((bucket + 1) << SUB_HALF_MAG) + (sub - SUB_HALF)).astype(np.int32)


def index_of_seconds(seconds: np.ndarray) -> tuple[np.ndarray, int, int]:
    us, n_low, n_high = to_units(seconds)
    return index_of_units(us), n_low, n_high


def _bucket_and_sub(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = np.asarray(index, dtype=np.int64)
    bucket = (index >> SUB_HALF_MAG) - 1
    sub = (index & (SUB_HALF - 1)) + SUB_HALF
    first = bucket < 0
    sub = np.where(first, sub - SUB_HALF, sub)
    bucket = np.where(first, 0, bucket)
    return bucket, sub


def lower_units(index: np.ndarray) -> np.ndarray:
    """Lowest µs value that falls into each index."""
    bucket, sub = _bucket_and_sub(index)
    return sub << (bucket + UNIT_MAG)


def width_units(index: np.ndarray) -> np.ndarray:
    bucket, _ = _bucket_and_sub(index)
    return np.left_shift(1, bucket + UNIT_MAG)


def lower_seconds(index: np.ndarray) -> np.ndarray:
    return lower_units(index) * UNIT


def upper_seconds(index: np.ndarray) -> np.ndarray:
    """Exclusive upper edge of each index, in seconds."""
    return (lower_units(index) + width_units(index)) * UNIT


def mid_seconds(index: np.ndarray) -> np.ndarray:
    """The value we report for a bucket: its middle, so the error is at most half a
    bucket (≤ 0.4 %) either way."""
    lo = lower_units(index)
    w = width_units(index)
    return (lo + (w - 1) / 2.0) * UNIT


def quantiles(idx: np.ndarray, cnt: np.ndarray, qs) -> np.ndarray:
    """Quantiles (nearest rank) of one histogram given as sparse (idx, cnt)."""
    qs = np.atleast_1d(np.asarray(qs, dtype=np.float64))
    out = np.full(len(qs), np.nan)
    total = int(np.sum(cnt))
    if total <= 0:
        return out
    order = np.argsort(idx, kind="stable")
    idx, cnt = np.asarray(idx)[order], np.asarray(cnt)[order]
    cum = np.cumsum(cnt)
    for k, q in enumerate(qs):
        if q < 0:
            out[k] = -math.inf
        elif q > 1:
            out[k] = math.inf
        else:
            rank = max(1, math.ceil(q * total))
            pos = int(np.searchsorted(cum, rank, side="left"))
            out[k] = float(mid_seconds(np.array([idx[pos]]))[0])
    return out


def fraction_below(idx: np.ndarray, cnt: np.ndarray, lower: float, upper: float) -> float:
    """Estimated fraction of observations in [lower, upper] (seconds), assuming
    values spread evenly inside a bucket."""
    idx = np.asarray(idx)
    cnt = np.asarray(cnt, dtype=np.float64)
    total = cnt.sum()
    if total <= 0:
        return math.nan
    lo, hi = lower_seconds(idx), upper_seconds(idx)
    width = hi - lo
    a = np.clip(np.maximum(lo, lower), lo, hi)
    b = np.clip(np.minimum(hi, upper), lo, hi)
    part = np.where(width > 0, np.clip(b - a, 0, None) / width, 0.0)
    return float((cnt * part).sum() / total)


def merge(idx: np.ndarray, cnt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum counts of equal indices; returns sorted unique indices."""
    if len(idx) == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int64)
    u, inv = np.unique(idx, return_inverse=True)
    out = np.zeros(len(u), np.int64)
    np.add.at(out, inv, cnt)
    keep = out != 0
    return u[keep].astype(np.int32), out[keep]


def to_hdrhistogram(idx: np.ndarray, cnt: np.ndarray):
    """An ``hdrh`` HdrHistogram holding these counts (for the encoded format)."""
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    for i, c in zip(np.asarray(idx).tolist(), np.asarray(cnt).tolist()):
        h.record_value(int(lower_units(np.array([i]))[0]), int(c))
    return h


def encode(idx: np.ndarray, cnt: np.ndarray) -> str:
    """The standard HdrHistogram base64 interchange encoding."""
    return to_hdrhistogram(idx, cnt).encode().decode()
