"""Prometheus staleness markers: a float sample whose bits are exactly
``0x7ff0000000000002`` ends a series (it disappears from instant selectors and
range windows ignore the marker). Writers of float samples mark a vanished
series with ``STALE_NAN``; an ordinary NaN stays a value."""
from __future__ import annotations

import struct

import numpy as np

STALE_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_BITS))[0]


def is_stale(values: np.ndarray) -> np.ndarray:
    v = np.ascontiguousarray(values, dtype=np.float64)
    return v.view(np.uint64) == np.uint64(STALE_BITS)
