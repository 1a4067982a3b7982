"""The head: the most recent histogram slots, kept in memory as they were
written to the store, so rules and "last N minutes" queries do not touch the
database (Prometheus keeps its head block for the same reason).

It holds the finest-resolution rows (the aggregator's slot) of the last
``span_s`` seconds, one merged ``HistRows`` per slot start, sorted by series:
a slot written twice (with the WAL on every flush writes the open slot too; late
data) is merged here exactly as the store merges it. ``complete_from_ns`` is the
promise: every finest row the store holds that starts at or after it is here,
so a read whose rows all start after it gives the store's answer.

It is complete only while this process is the store's only writer: the service
loads the last ``span_s`` from the store at start, then adds each batch once the
store has committed it. Rows older than the span, or past ``max_rows``, are
dropped oldest slot first and ``complete_from_ns`` moves forward.
"""
from __future__ import annotations

import threading

import numpy as np

from collector import cancel
from collector.aggregate.merge import merge_rows
from collector.model import NS, HistRows


class Head:
    def __init__(self, span_s: float, slot_s: int, clock, max_rows: int = 2_000_000):
        self.span_ns = int(span_s * NS)
        self.slot_ns = int(slot_s) * NS
        self.slot_s = int(slot_s)
        self.clock = clock               # ns
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._slots: dict[int, HistRows] = {}
        self._rows = 0
        self.complete_from_ns: int | None = None   # None: not loaded yet, nothing is promised
        self.reads = 0                   # reads answered here (tests, self-metrics)

    # -- filling ----------------------------------------------------------------------------------
    def load(self, store, series_ids: np.ndarray) -> None:
        """Start from what the store holds for the span (at service start, before any flush)."""
        start = (self.clock() - self.span_ns) // self.slot_ns * self.slot_ns
        rows = store.read_hist(np.asarray(series_ids, np.uint64), start, 2**62) if len(series_ids) else HistRows.empty()
        with self._lock:
            self._slots, self._rows = {}, 0
            self.complete_from_ns = start
        self.add(rows)

    def add(self, rows: HistRows) -> None:
        """Rows just committed to the store."""
        if self.complete_from_ns is None:
            return
        if len(rows):
            keep = (rows.res == self.slot_s) & (rows.ts >= self.complete_from_ns)
            if not keep.all():
                rows = rows.take(np.nonzero(keep)[0])
        with self._lock:
            if len(rows):
                starts = np.unique(rows.ts)
                order = np.argsort(rows.ts, kind="stable")
                ts_sorted = rows.ts[order]
                for st in starts.tolist():
                    a, b = np.searchsorted(ts_sorted, [st, st + 1])
                    new = rows.take(order[a:b])
                    old = self._slots.get(st)
                    merged = merge_rows(HistRows.concat([old, new]) if old is not None else new)
                    if len(merged) > 1 and not (merged.series_id[1:] > merged.series_id[:-1]).all():
                        merged = merged.take(np.argsort(merged.series_id, kind="stable"))
                    self._rows += len(merged) - (len(old) if old is not None else 0)
                    self._slots[st] = merged
            self._evict()

    def _evict(self) -> None:
        cutoff = (self.clock() - self.span_ns) // self.slot_ns * self.slot_ns
        for st in sorted(self._slots):
            if st >= cutoff and self._rows <= self.max_rows:
                break
            self._rows -= len(self._slots.pop(st))
            cutoff = max(cutoff, st + self.slot_ns)
        self.complete_from_ns = max(self.complete_from_ns, cutoff)

    # -- reading ----------------------------------------------------------------------------------
    def covers(self, from_ns: int) -> bool:
        c = self.complete_from_ns
        return c is not None and from_ns >= c

    def read_hist(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> HistRows | None:
        """Rows of these series starting in [start_ns, end_ns), or None
        when the head does not hold all of that time."""
        with self._lock:
            if not self.covers(start_ns):
                return None
            slots = [(st, r) for st, r in self._slots.items() if start_ns <= st < end_ns]
        self.reads += 1
        ids = np.asarray(series_ids, np.uint64)
        if len(ids) > 1 and not (ids[1:] > ids[:-1]).all():
            ids = np.unique(ids)   # the lookups below need them sorted and distinct
        parts = []
        for k, (_st, rows) in enumerate(sorted(slots, key=lambda x: x[0])):
            if k % 16 == 15:
                cancel.check()
            sid = rows.series_id
            if len(ids) * 8 >= len(sid):   # many series: look each row up among the ids (both sorted)
                at = np.minimum(np.searchsorted(ids, sid), len(ids) - 1)
                hit = np.nonzero(ids[at] == sid)[0]
            else:   # few series: binary search (a series may have two rows: two bucket layouts)
                lo, hi = np.searchsorted(sid, ids, "left"), np.searchsorted(sid, ids, "right")
                n = hi - lo
                if (n <= 1).all():
                    hit = lo[n == 1]
                else:
                    hit = np.repeat(lo - np.concatenate([[0], np.cumsum(n)[:-1]]), n) + np.arange(int(n.sum()))
            if len(hit) == len(sid):
                parts.append(rows)
            elif len(hit):
                parts.append(rows.take(hit))
        out = HistRows.concat(parts)
        cancel.charge(len(out) + int(out.offsets[-1]))
        return out

    def stats(self) -> tuple[int, int]:
        """(slots, rows) held."""
        with self._lock:
            return len(self._slots), self._rows
