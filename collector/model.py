"""Immutable values passed between the stages: series identity and the row sets
that the store and the in-memory aggregator hand to the query engine.

Times are integers in nanoseconds since the Unix epoch (UTC) everywhere inside
Tocsin; seconds (float) only at the edges (PromQL, the HTTP API).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from collector import cancel

NS = 1_000_000_000
TAKE_CHUNK_ROWS = 20_000   # HistRows.take gathers this many rows per numpy call

# Series kinds.
KIND_HDR = "hdr"          # native histogram in the HDR layout (collector.aggregate.hdr)
KIND_CUSTOM = "custom"    # histogram with the sender's explicit bucket bounds
KIND_COUNTER = "counter"  # float samples, cumulative
KIND_GAUGE = "gauge"      # float samples
KIND_NATIVE = "native"    # Prometheus native-histogram samples kept exactly (collector.query.exphist)

HISTOGRAM_KINDS = (KIND_HDR, KIND_CUSTOM)

Labels = tuple[tuple[str, str], ...]
"""Sorted (name, value) pairs, without __name__. Hashable, so it can key dicts."""


def make_labels(d: dict[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in d.items() if v != ""))


def series_id(metric: str, labels: Labels) -> int:
    """Stable 64-bit id of a series: the same on every process and every run, so
    several collectors can write one store (see docs/decisions.md)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(metric.encode())
    for k, v in labels:
        h.update(b"\x00")
        h.update(k.encode())
        h.update(b"\x01")
        h.update(v.encode())
    return int.from_bytes(h.digest(), "little")


@dataclass(frozen=True)
class Series:
    id: int
    metric: str
    labels: Labels
    kind: str
    unit: str = ""
    help: str = ""

    def label_dict(self) -> dict[str, str]:
        d = dict(self.labels)
        d["__name__"] = self.metric
        return d


@dataclass(frozen=True)
class HistRows:
    """Histogram slots in compressed-sparse-row form.

    Row i is series ``series_id[i]`` over the slot ``[ts[i], ts[i] + res[i]*1e9)``;
    its non-empty buckets are ``idx[offsets[i]:offsets[i+1]]`` with counts
    ``cnt[offsets[i]:offsets[i+1]]``. For HDR rows ``idx`` is an HDR counts index
    (collector.aggregate.hdr); for custom rows it indexes ``bounds[i]``'s buckets
    (bucket j holds values <= bounds[j]; the last bucket, j == len(bounds), is +Inf).
    ``sum``/``min``/``max`` are in seconds.
    """

    series_id: np.ndarray  # uint64
    ts: np.ndarray         # int64 ns, slot start
    res: np.ndarray        # int32 seconds
    count: np.ndarray      # int64
    sum: np.ndarray        # float64
    min: np.ndarray        # float64
    max: np.ndarray        # float64
    offsets: np.ndarray    # int64, len n+1
    idx: np.ndarray        # int32
    cnt: np.ndarray        # int64
    bounds: tuple = ()     # per row: tuple of floats, or None for HDR rows; () when all HDR

    def __len__(self) -> int:
        return len(self.series_id)

    @staticmethod
    def empty() -> "HistRows":
        z = np.zeros(0)
        return HistRows(z.astype(np.uint64), z.astype(np.int64), z.astype(np.int32), z.astype(np.int64),
                        z, z.copy(), z.copy(), np.zeros(1, np.int64), z.astype(np.int32), z.astype(np.int64))

    def row_bounds(self, i: int):
        return self.bounds[i] if self.bounds else None

    def take(self, rows: np.ndarray) -> "HistRows":
        """A new HistRows with the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.offsets[rows], self.offsets[rows + 1]
        lens = ends - starts
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lens, out=offsets[1:])
        idx, cnt = np.empty(int(offsets[-1]), self.idx.dtype), np.empty(int(offsets[-1]), self.cnt.dtype)
        # In pieces: np.repeat holds the interpreter lock for its whole run (a third of a
        # second over a day of rows), and the event loop serving ingest needs it meanwhile.
        for a in range(0, len(rows), TAKE_CHUNK_ROWS):
            if a:
                cancel.check()   # a query past its deadline stops here too
            b = min(len(rows), a + TAKE_CHUNK_ROWS)
            lo, hi = int(offsets[a]), int(offsets[b])
            if hi > lo:
                gather = np.repeat(starts[a:b] - offsets[a:b], lens[a:b]) + np.arange(lo, hi)
                idx[lo:hi] = self.idx[gather]
                cnt[lo:hi] = self.cnt[gather]
        bounds = tuple(self.bounds[i] for i in rows) if self.bounds else ()
        return HistRows(self.series_id[rows], self.ts[rows], self.res[rows], self.count[rows],
                        self.sum[rows], self.min[rows], self.max[rows], offsets, idx, cnt, bounds)

    @staticmethod
    def concat(parts: list["HistRows"]) -> "HistRows":
        parts = [p for p in parts if len(p)]
        if not parts:
            return HistRows.empty()
        if len(parts) == 1:
            return parts[0]
        lens = [p.offsets[-1] for p in parts]
        shifts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        offsets = np.concatenate([np.zeros(1, np.int64)] + [p.offsets[1:] + s for p, s in zip(parts, shifts)])
        any_custom = any(p.bounds for p in parts)
        bounds = tuple(b for p in parts for b in (p.bounds or (None,) * len(p))) if any_custom else ()
        cat = np.concatenate
        return HistRows(cat([p.series_id for p in parts]), cat([p.ts for p in parts]),
                        cat([p.res for p in parts]), cat([p.count for p in parts]),
                        cat([p.sum for p in parts]), cat([p.min for p in parts]), cat([p.max for p in parts]),
                        offsets.astype(np.int64), cat([p.idx for p in parts]), cat([p.cnt for p in parts]), bounds)


@dataclass(frozen=True)
class SampleRows:
    """Float samples: series ``series_id[i]`` had value ``value[i]`` at ``ts[i]`` (ns)."""

    series_id: np.ndarray  # uint64
    ts: np.ndarray         # int64 ns
    value: np.ndarray      # float64

    def __len__(self) -> int:
        return len(self.series_id)

    @staticmethod
    def empty() -> "SampleRows":
        return SampleRows(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0))

    @staticmethod
    def concat(parts: list["SampleRows"]) -> "SampleRows":
        parts = [p for p in parts if len(p)]
        if not parts:
            return SampleRows.empty()
        return SampleRows(np.concatenate([p.series_id for p in parts]), np.concatenate([p.ts for p in parts]),
                          np.concatenate([p.value for p in parts]))


@dataclass
class SeriesCatalog:
    """Every known series, by id. Held in memory (tens of thousands of series fit
    easily) so that label matching never touches the database."""

    by_id: dict[int, Series] = field(default_factory=dict)

    def add(self, s: Series) -> bool:
        if s.id in self.by_id:
            return False
        self.by_id[s.id] = s
        return True

    def get(self, sid: int) -> Series | None:
        return self.by_id.get(sid)

    def all(self) -> list[Series]:
        return list(self.by_id.values())


@dataclass(frozen=True)
class ExemplarRows:
    """Exemplars: the example requests kept per series per slot
    (collector/aggregate/exemplars.py). Row i belongs to series ``series_id[i]``
    and the slot starting at ``ts[i]``; ``grp[i]`` is the octave of its value (at
    most one exemplar per series, slot and octave: the slowest). ``at`` is when it
    was observed (a span's end, ns), ``value`` the observed value (seconds for
    durations), ``trace_id``/``span_id`` the raw ids (16 and 8 bytes per row)."""

    series_id: np.ndarray  # uint64
    ts: np.ndarray         # int64 ns, slot start
    grp: np.ndarray        # int16
    at: np.ndarray         # int64 ns
    value: np.ndarray      # float64
    trace_id: np.ndarray   # uint8, shape (n, 16)
    span_id: np.ndarray    # uint8, shape (n, 8)

    def __len__(self) -> int:
        return len(self.series_id)

    @staticmethod
    def empty() -> "ExemplarRows":
        return ExemplarRows(np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int16),
                            np.zeros(0, np.int64), np.zeros(0), np.zeros((0, 16), np.uint8), np.zeros((0, 8), np.uint8))

    def take(self, rows) -> "ExemplarRows":
        rows = np.asarray(rows, dtype=np.int64)
        return ExemplarRows(self.series_id[rows], self.ts[rows], self.grp[rows], self.at[rows], self.value[rows],
                            self.trace_id[rows], self.span_id[rows])

    @staticmethod
    def concat(parts: list["ExemplarRows"]) -> "ExemplarRows":
        parts = [p for p in parts if len(p)]
        if not parts:
            return ExemplarRows.empty()
        if len(parts) == 1:
            return parts[0]
        cat = np.concatenate
        return ExemplarRows(cat([p.series_id for p in parts]), cat([p.ts for p in parts]),
                            cat([p.grp for p in parts]), cat([p.at for p in parts]), cat([p.value for p in parts]),
                            cat([p.trace_id for p in parts]), cat([p.span_id for p in parts]))
