"""Histogram rows shared by a batch of queries at one evaluation time (a rule
group's evaluation): the rows of a window are read once for every
histogram-backed series and each selector takes its series from memory.

A key (window bounds) is read for everything only when a second selector asks
for it (or at once for a batch said to be large), so a batch of one query reads
no more than it did alone; and only when the window is short enough for every
series' rows to fit comfortably.
"""
from __future__ import annotations

from collector.model import NS, HistRows

FINEST_RES_NS = 10 * NS        # the finest slot a store holds: bounds the rows of a window
MAX_ROWS = 2_000_000           # read everything only when at most this many rows can come back


class HistReadCache:
    def __init__(self, all_ids, eager: bool = False):
        self._all_ids = all_ids            # () -> np.ndarray of every histogram-backed series id
        self._eager = eager                # read everything at the first ask (a batch known to be large)
        self._rows: dict[tuple, dict[int, HistRows]] = {}
        self._asked: set[tuple] = set()
        self.reads = 0                     # source reads made through the cache (tests)
        self.memo: dict[tuple, object] = {}   # reads of the head, per series set (loader.read_hist)

    def get(self, key: tuple, read, group) -> dict[int, HistRows] | None:
        """Rows per series for ``key`` = (lo, hi, min_end, ...), or None when the caller
        should read its own series. ``read(ids)`` reads from the source and
        ``group(rows)`` splits rows per series."""
        got = self._rows.get(key)
        if got is not None:
            return got
        if key not in self._asked and not self._eager:
            self._asked.add(key)
            return None
        ids = self._all_ids()
        _lo, hi, min_end = key[:3]
        if len(ids) * max(1, (hi - min_end) // FINEST_RES_NS + 1) > MAX_ROWS:
            return None
        self.reads += 1
        got = self._rows[key] = group(read(ids))
        return got
