"""Exemplars: from a latency histogram to the requests behind it.

Per histogram series per slot the aggregator keeps, for every octave of the
value (the HDR layout's power-of-two buckets: [64 µs, 128 µs), [128 µs, 256 µs),
... — 26 of them from 1 µs to 1 h), the slowest observation that came with a
trace id: its trace and span ids, value and time. So the slowest request of the
slot is always kept, and every region of the distribution that has requests has
one within a factor of two of it — the p99 region included, whatever the shape.

Why octaves and "slowest": the choice is a maximum per key, which is associative
and commutative. A slot written twice (open slots are flushed with the WAL on,
late data, receiver workers, two replicas), or merged from memory and disk at
read time, always ends with the same exemplars whatever the order: merging is
"keep the larger value per (series, slot, octave)", like the histogram rows'
merge. A typical latency distribution spans 4-8 octaves, so that is the number
of exemplars per series per slot; never more than 26.

Both span paths produce exactly the same chunks (the compiled one in
spanwire.c: sw_reduce; tests/receiver/test_fast_spans.py compares them): among
spans of one (series, slot, octave) the longest wins, the first in request
order on a tie; between chunks the larger value wins, the earlier chunk on a tie.
"""
from __future__ import annotations

import numpy as np

from collector.aggregate import hdr
from collector.model import ExemplarRows

GROUPS = hdr.COUNTS_LEN >> hdr.SUB_HALF_MAG   # octaves of the HDR layout (26)
TRACE_BYTES, SPAN_BYTES = 16, 8
ID_BYTES = TRACE_BYTES + SPAN_BYTES
COMPACT_EVERY = 64   # chunks per slot before they are reduced
_ZERO_IDS = bytes(ID_BYTES)


def group_of_index(idx: np.ndarray) -> np.ndarray:
    """The octave of HDR counts indices."""
    return np.asarray(idx, np.int64) >> hdr.SUB_HALF_MAG


def group_of_seconds(values: np.ndarray) -> np.ndarray:
    return group_of_index(hdr.index_of_seconds(np.asarray(values, np.float64))[0])


def id_row(trace_id: bytes, span_id: bytes) -> bytes:
    """The 24 bytes of one exemplar's ids, or 24 zero bytes when they are not
    usable: a trace id must be 16 bytes and not all zero (the OTLP spec's
    invalid id), a span id 8 bytes (an invalid one keeps the exemplar out too,
    as spanwire.c does)."""
    if len(trace_id) != TRACE_BYTES or len(span_id) != SPAN_BYTES or not any(trace_id):
        return _ZERO_IDS
    return trace_id + span_id


def ids_array(rows: list[bytes]) -> np.ndarray:
    """``id_row`` results → an (n, 24) uint8 array."""
    if not rows:
        return np.zeros((0, ID_BYTES), np.uint8)
    return np.frombuffer(b"".join(rows), np.uint8).reshape(-1, ID_BYTES)


def usable(ids: np.ndarray) -> np.ndarray:
    """Rows whose ids make an exemplar (a non-zero trace id)."""
    return ids[:, :TRACE_BYTES].any(axis=1)


def best_per_key(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Positions of the largest value per key (the first one on a tie), in key order."""
    if len(keys) == 0:
        return np.zeros(0, np.int64)
    order = np.lexsort((-values, keys))   # stable: equal values keep their order
    k = keys[order]
    first = np.ones(len(k), bool)
    first[1:] = k[1:] != k[:-1]
    return order[first]


class _Chunks:
    __slots__ = ("keys", "values", "at", "ids", "raw")

    def __init__(self):
        self.keys: list[np.ndarray] = []     # local series id * GROUPS + octave
        self.values: list[np.ndarray] = []
        self.at: list[np.ndarray] = []
        self.ids: list[np.ndarray] = []      # (n, 24) uint8
        self.raw: list[tuple] = []           # the compiled path's chunks, as its bytes until compaction

    def add(self, keys, values, at, ids) -> None:
        self.keys.append(keys)
        self.values.append(values)
        self.at.append(at)
        self.ids.append(ids)
        if len(self.keys) + len(self.raw) >= COMPACT_EVERY:
            self.compact()

    def add_raw(self, keys: bytes, values: bytes, at: bytes, ids: bytes) -> None:
        """A chunk as int64 / float64 / int64 / 24-byte-row bytes: turned into arrays in
        one go at compaction (numpy calls per chunk cost more than the chunk's work)."""
        self.raw.append((keys, values, at, ids))
        if len(self.keys) + len(self.raw) >= COMPACT_EVERY:
            self.compact()

    def compact(self) -> None:
        joined = len(self.raw)
        if joined:
            k, v, a, i = (b"".join(parts) for parts in zip(*self.raw))
            self.raw = []
            self.keys.append(np.frombuffer(k, np.int64))
            self.values.append(np.frombuffer(v, np.float64))
            self.at.append(np.frombuffer(a, np.int64))
            self.ids.append(np.frombuffer(i, np.uint8).reshape(-1, ID_BYTES))
        if len(self.keys) <= 1 and joined <= 1:   # one chunk: already one row per key
            return
        keys, values = np.concatenate(self.keys), np.concatenate(self.values)
        at, ids = np.concatenate(self.at), np.concatenate(self.ids)
        best = best_per_key(keys, values)
        self.keys, self.values, self.at, self.ids = [keys[best]], [values[best]], [at[best]], [ids[best]]


class ExemplarSlots:
    """The exemplars of the aggregator's open slots, keyed by slot start. Not
    thread-safe on its own: the aggregator calls it under its lock."""

    def __init__(self):
        self._slots: dict[int, _Chunks] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def starts(self) -> list[int]:
        return list(self._slots)

    def _chunks(self, start: int) -> _Chunks:
        c = self._slots.get(start)
        if c is None:
            c = self._slots[start] = _Chunks()
        return c

    def add(self, start: int, local: np.ndarray, idx: np.ndarray, values: np.ndarray, at: np.ndarray,
            ids: np.ndarray) -> None:
        """Observations of one slot (``local`` series ids, HDR indices, values,
        times, (n, 24) ids, in request order): the best per series and octave is kept."""
        ok = usable(ids)
        if not ok.all():
            if not ok.any():
                return
            local, idx, values, at, ids = local[ok], idx[ok], values[ok], at[ok], ids[ok]
        keys = np.asarray(local, np.int64) * GROUPS + group_of_index(idx)
        best = best_per_key(keys, values)
        self._chunks(start).add(keys[best], values[best], at[best], ids[best])

    def add_reduced(self, start: int, keys: bytes, values: bytes, at: bytes, ids: bytes) -> None:
        """A chunk already reduced to one row per key, keys ascending (the compiled
        path's: int64, float64, int64 and 24-byte rows as bytes)."""
        if keys:
            self._chunks(start).add_raw(keys, values, at, ids)

    def _rows(self, start: int, c: _Chunks, sid64: np.ndarray) -> ExemplarRows:
        c.compact()
        if not c.keys or not len(c.keys[0]):
            return ExemplarRows.empty()
        keys, ids = c.keys[0], c.ids[0]
        # times at the stores' precision (µs), so memory and disk agree
        return ExemplarRows(sid64[keys // GROUPS], np.full(len(keys), start, np.int64),
                            (keys % GROUPS).astype(np.int16), c.at[0].astype(np.int64) // 1000 * 1000,
                            c.values[0].astype(np.float64), np.ascontiguousarray(ids[:, :TRACE_BYTES]),
                            np.ascontiguousarray(ids[:, TRACE_BYTES:]))

    def take(self, starts, sid64: np.ndarray) -> ExemplarRows:
        """Remove and return the exemplars of these slots."""
        parts = []
        for s in starts:
            c = self._slots.pop(s, None)
            if c is not None:
                parts.append(self._rows(s, c, sid64))
        return ExemplarRows.concat(parts)

    def snapshot(self, sid64: np.ndarray, want: np.ndarray, start_ns: int, end_ns: int) -> ExemplarRows:
        """What is held for the series ``want`` in slots starting in [start_ns, end_ns)."""
        rows = ExemplarRows.concat([self._rows(s, c, sid64) for s, c in self._slots.items()
                                    if start_ns <= s < end_ns])
        if len(rows):
            rows = rows.take(np.nonzero(np.isin(rows.series_id, want))[0])
        return rows

    def putback(self, rows: ExemplarRows, local_of) -> None:
        """Rows that could not be written come back (``local_of``: series id → local id)."""
        if not len(rows):
            return
        local = np.array([local_of.get(int(x), -1) for x in rows.series_id.tolist()], np.int64)
        if (local < 0).any():   # a series this aggregator does not know (never expected): dropped
            rows, local = rows.take(np.nonzero(local >= 0)[0]), local[local >= 0]
        keys = local * GROUPS + rows.grp.astype(np.int64)
        ids = np.concatenate([rows.trace_id, rows.span_id], axis=1)
        for start in np.unique(rows.ts).tolist():
            sel = np.nonzero(rows.ts == start)[0]
            best = sel[best_per_key(keys[sel], rows.value[sel])]
            self._chunks(int(start)).add(keys[best], rows.value[best], rows.at[best], ids[best])


def dedupe(rows: ExemplarRows) -> ExemplarRows:
    """One row per (series, slot, octave): the largest value (the first on a tie).
    Stores append and keep duplicates until they compact; readers call this."""
    if len(rows) < 2:
        return rows
    order = np.lexsort((-rows.value, rows.grp, rows.ts, rows.series_id))
    s, t, g = rows.series_id[order], rows.ts[order], rows.grp[order]
    first = np.ones(len(order), bool)
    first[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1]) | (g[1:] != g[:-1])
    if first.all():
        return rows
    return rows.take(np.sort(order[first]))


def hex_ids(rows: ExemplarRows) -> tuple[list[str], list[str]]:
    """Trace and span ids as lowercase hex (the W3C / OTLP JSON form)."""
    return [r.tobytes().hex() for r in rows.trace_id], [r.tobytes().hex() for r in rows.span_id]
