"""OTLP temporality → what the aggregator stores.

Histograms are stored as per-slot deltas, so cumulative histogram points are
turned into deltas: the last cumulative point of each series is kept; the next
one minus it is the delta. A changed start time, or any count going down, is a
reset: the point itself is then the delta. The first point of a series counts
only when its start time is inside the lateness window (the series began
recently, so all of it is new); otherwise it is only the baseline, because its
counts may span days that the aggregator could not place in time anyway.

Counters are stored as cumulative samples (Prometheus semantics), so delta sums
are turned into running totals per series.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

import numpy as np

P = TypeVar("P")


@dataclass(frozen=True)
class HistPoint:
    """An explicit-bucket histogram point: ``counts`` has ``len(bounds) + 1`` buckets."""

    bounds: tuple[float, ...]
    counts: np.ndarray  # int64
    count: int
    sum: float


def subtract_explicit(cur: HistPoint, prev: HistPoint) -> HistPoint | None:
    """``cur - prev``; None (a reset) when the bounds changed or a count went down."""
    if cur.bounds != prev.bounds:
        return None
    d = np.asarray(cur.counts, np.int64) - np.asarray(prev.counts, np.int64)
    if (d < 0).any() or cur.count < prev.count:
        return None
    return HistPoint(cur.bounds, d, cur.count - prev.count, cur.sum - prev.sum)


class CumulativeToDelta(Generic[P]):
    """Per-series state for cumulative → delta. Thread-safe; keeps at most
    ``max_series`` series (the least recently updated are forgotten, and their
    next point becomes a new baseline)."""

    def __init__(self, subtract: Callable[[P, P], P | None], lateness_ns: int, max_series: int = 200_000):
        self._subtract = subtract
        self._lateness_ns = lateness_ns
        self._max = max_series
        self._last: OrderedDict[Hashable, tuple[int, int, P]] = OrderedDict()
        self._lock = threading.Lock()
        self._dirty: set = set()

    def take_changed(self) -> dict:
        """The state of every series changed since the last call (to persist)."""
        with self._lock:
            out = {k: self._last[k] for k in self._dirty if k in self._last}
            self._dirty = set()
        return out

    def restore(self, state: dict) -> None:
        """Load persisted state (at start, before any point arrives)."""
        with self._lock:
            for k, v in state.items():
                self._last[k] = v
                if len(self._last) > self._max:
                    self._last.popitem(last=False)

    def delta(self, key: Hashable, start_ns: int, time_ns: int, point: P, now_ns: int) -> P | None:
        """The delta this cumulative point adds, or None when it adds nothing
        to record (a baseline, or a repeated / out-of-order point)."""
        with self._lock:
            prev = self._last.get(key)
            if prev is not None and time_ns <= prev[1] and start_ns == prev[0]:
                return None  # a retry or an older point: already counted
            self._last[key] = (start_ns, time_ns, point)
            self._last.move_to_end(key)
            self._dirty.add(key)
            if len(self._last) > self._max:
                self._last.popitem(last=False)
        if prev is None:
            recent = start_ns > 0 and start_ns >= now_ns - self._lateness_ns
            return point if recent else None
        if start_ns != prev[0]:
            return point
        d = self._subtract(point, prev[2])
        return point if d is None else d

    def __len__(self) -> int:
        return len(self._last)


class DeltaToCumulative:
    """Running totals of delta sums, per series (thread-safe, bounded like above)."""

    def __init__(self, max_series: int = 200_000):
        self._max = max_series
        self._totals: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()
        self._dirty: set = set()

    def take_changed(self) -> dict:
        with self._lock:
            out = {k: self._totals[k] for k in self._dirty if k in self._totals}
            self._dirty = set()
        return out

    def restore(self, state: dict) -> None:
        with self._lock:
            self._totals.update(state)

    def add(self, key: Hashable, value: float) -> float:
        with self._lock:
            total = self._totals.get(key, 0.0) + value
            self._totals[key] = total
            self._totals.move_to_end(key)
            self._dirty.add(key)
            if len(self._totals) > self._max:
                self._totals.popitem(last=False)
            return total
