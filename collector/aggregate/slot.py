"""One open time slot of the aggregator: the hot path appends reduced chunks,
which are merged (``compact``) when there are many or when the slot is read."""
from __future__ import annotations

import numpy as np


class Slot:
    """One open time slot: chunks appended by the hot path, reduced on demand."""

    __slots__ = ("start", "keys", "counts", "stat_sid", "stat_sum", "stat_min", "stat_max", "custom")

    def __init__(self, start: int):
        self.start = start
        self.keys: list[np.ndarray] = []      # local_sid * COUNTS_LEN + hdr index
        self.counts: list[np.ndarray] = []
        self.stat_sid: list[np.ndarray] = []
        self.stat_sum: list[np.ndarray] = []
        self.stat_min: list[np.ndarray] = []
        self.stat_max: list[np.ndarray] = []
        self.custom: dict[tuple[int, tuple], list] = {}  # (local_sid, bounds) -> [counts, sum]

    def compact(self) -> None:
        if len(self.keys) > 1:
            k, c = reduce(np.concatenate(self.keys), np.concatenate(self.counts))
            self.keys, self.counts = [k], [c]
        if len(self.stat_sid) > 1:
            sid, s, mn, mx = reduce_stats(self.stat_sid, self.stat_sum, self.stat_min, self.stat_max)
            self.stat_sid, self.stat_sum, self.stat_min, self.stat_max = [sid], [s], [mn], [mx]


def reduce(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    u, inv = np.unique(keys, return_inverse=True)
    out = np.zeros(len(u), np.int64)
    np.add.at(out, inv, counts)
    return u, out


def reduce_stats(sids, sums, mins, maxs):
    sid = np.concatenate(sids)
    u, inv = np.unique(sid, return_inverse=True)
    s = np.zeros(len(u))
    np.add.at(s, inv, np.concatenate(sums))
    mn = np.full(len(u), np.inf)
    np.minimum.at(mn, inv, np.concatenate(mins))
    mx = np.full(len(u), -np.inf)
    np.maximum.at(mx, inv, np.concatenate(maxs))
    return u, s, mn, mx
