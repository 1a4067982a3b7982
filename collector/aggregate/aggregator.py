"""In-memory aggregation: observations → per-series, per-slot histograms.

Receivers call the ``record_*`` methods with whole batches (numpy arrays); the
hot path only appends reduced arrays to the open slot. ``take_closed`` hands
closed slots to the flusher as one ``WriteBatch``; ``snapshot`` gives the query
engine what is still in memory, so a query sees data as soon as it was
acknowledged.
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from collector.aggregate import hdr
from collector.aggregate.exemplars import ExemplarSlots
from collector.aggregate.slot import Slot as _Slot
from collector.aggregate.slot import reduce as _reduce
from collector.model import (KIND_COUNTER, KIND_CUSTOM, KIND_GAUGE, KIND_HDR, NS, ExemplarRows, HistRows, Labels,
                             SampleRows, Series, SeriesCatalog, series_id)
from collector.store.base import WriteBatch

OVERFLOW_LABELS: Labels = (("otel_metric_overflow", "true"),)

REASON_TOO_OLD = "too_old"
REASON_IN_FUTURE = "in_future"


@dataclass
class RecordResult:
    """What happened to the items of one call; merged over a request."""

    accepted: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    clamped: int = 0  # values outside the HDR range, stored at its edge
    ignored: int = 0  # received and deliberately not used (CLIENT spans, ...): not an error
    ignored_reasons: Counter = field(default_factory=Counter)
    exemplars: int = 0  # metric exemplars kept (OTLP, remote write); span exemplars are not counted

    def reject(self, reason: str, n: int = 1) -> None:
        if n:
            self.rejected += n
            self.reasons[reason] += n

    def ignore(self, reason: str, n: int = 1) -> None:
        if n:
            self.ignored += n
            self.ignored_reasons[reason] += n

    def merge(self, other: "RecordResult") -> "RecordResult":
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.reasons.update(other.reasons)
        self.clamped += other.clamped
        self.ignored += other.ignored
        self.ignored_reasons.update(other.ignored_reasons)
        self.exemplars += other.exemplars
        return self

    def message(self) -> str:
        return "; ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(self.reasons.items()))


@dataclass(frozen=True)
class AggregatorSettings:
    slot_seconds: int = 10
    lateness_seconds: int = 300        # older data is rejected
    future_skew_seconds: int = 300     # data ending further in the future is rejected
    flush_grace_seconds: int = 2       # a slot is flushed this long after it ends
    max_series_per_metric: int = 10_000
    exemplars: bool = True             # keep exemplars (collector/aggregate/exemplars.py)


class Aggregator:
    COMPACT_EVERY = 64  # chunks per slot before they are reduced

    def __init__(self, catalog: SeriesCatalog, settings: AggregatorSettings | None = None,
                 clock: Callable[[], int] = time.time_ns, on_overflow: Callable[[str], None] | None = None):
        self.catalog = catalog
        self.settings = settings or AggregatorSettings()
        self.clock = clock
        self.on_overflow = on_overflow
        self._lock = threading.Lock()
        self._slot_ns = self.settings.slot_seconds * NS
        self._local: dict[tuple[str, Labels], int] = {}
        self._sid64: list[int] = []
        self._per_metric: Counter = Counter()
        self._new_series: list[Series] = []
        self._slots: dict[int, _Slot] = {}
        self._samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._exemplars = ExemplarSlots()   # per open slot, beside _slots (taken and put back with them)
        self.clamped_total = 0
        for s in catalog.all():
            self._register_known(s)

    # -- series ---------------------------------------------------------------
    def _register_known(self, s: Series) -> int:
        key = (s.metric, s.labels)
        local = self._local.get(key)
        if local is None:
            local = len(self._sid64)
            self._local[key] = local
            self._sid64.append(s.id)
            self._per_metric[s.metric] += 1
        return local

    def _local_id(self, metric: str, labels: Labels, kind: str, unit: str, help: str) -> int:
        local = self._local.get((metric, labels))
        if local is not None:
            return local
        if self._per_metric[metric] >= self.settings.max_series_per_metric:
            if self.on_overflow:
                self.on_overflow(metric)
            labels = OVERFLOW_LABELS
            local = self._local.get((metric, labels))
            if local is not None:
                return local
        s = Series(series_id(metric, labels), metric, labels, kind, unit, help)
        self.catalog.add(s)
        self._new_series.append(s)
        return self._register_known(s)

    def series_count(self) -> int:
        return len(self._sid64)

    # -- time checks ----------------------------------------------------------
    def _time_ok(self, end_ns: np.ndarray, result: RecordResult) -> np.ndarray:
        now = self.clock()
        too_old = end_ns < now - self.settings.lateness_seconds * NS
        future = end_ns > now + self.settings.future_skew_seconds * NS
        result.reject(REASON_TOO_OLD, int(too_old.sum()))
        result.reject(REASON_IN_FUTURE, int(future.sum()))
        return ~(too_old | future)

    def _slot(self, start: int) -> _Slot:
        slot = self._slots.get(start)
        if slot is None:
            slot = self._slots[start] = _Slot(start)
        return slot

    # -- recording ------------------------------------------------------------
    def record_durations(self, metric: str, label_sets: list[Labels], which: np.ndarray, end_ns: np.ndarray,
                         seconds: np.ndarray, unit: str = "s", help: str = "",
                         ids: np.ndarray | None = None) -> RecordResult:
        """Record one observation per element: ``seconds[i]`` for series
        ``label_sets[which[i]]``, placed in the slot of ``end_ns[i]``. ``ids``: the
        trace and span id of each ((n, 24) uint8, zero rows where there are none),
        for exemplars."""
        result = RecordResult()
        if len(which) == 0:
            return result
        which = np.asarray(which, dtype=np.int64)
        end_ns = np.asarray(end_ns, dtype=np.int64)
        seconds = np.asarray(seconds, dtype=np.float64)
        ok = self._time_ok(end_ns, result)
        if ids is not None and not self.settings.exemplars:
            ids = None
        if not ok.all():
            which, end_ns, seconds = which[ok], end_ns[ok], seconds[ok]
            if ids is not None:
                ids = ids[ok]
            if len(which) == 0:
                return result
            # register only the series that still have observations
            used, which = np.unique(which, return_inverse=True)
            label_sets = [label_sets[i] for i in used.tolist()]
        idx, n_low, n_high = hdr.index_of_seconds(seconds)
        result.clamped = n_low + n_high
        slot_start = (end_ns // self._slot_ns) * self._slot_ns
        with self._lock:
            locals_ = np.fromiter((self._local_id(metric, ls, KIND_HDR, unit, help) for ls in label_sets),
                                  dtype=np.int64, count=len(label_sets))
            sid = locals_[which]
            self.clamped_total += result.clamped
            starts = np.unique(slot_start)
            for start in starts.tolist():
                sel = slot_start == start if len(starts) > 1 else slice(None)
                self._add_to_slot(start, sid[sel], idx[sel], seconds[sel])
                if ids is not None:
                    self._exemplars.add(start, sid[sel], idx[sel], seconds[sel], end_ns[sel], ids[sel])
        result.accepted += len(which)
        return result

    def record_batch(self, metric: str, label_sets: list[Labels], batch, unit: str = "s",
                     help: str = "") -> RecordResult:
        """``record_durations`` for a batch that buckets itself (the compiled span
        path, collector/receiver/fastspans.py): ``batch.time_filter(too_old_before,
        future_after)`` → (too old, in future, the key indexes still used, int64
        bytes); ``batch.reduce(locals, slot_ns, COUNTS_LEN, HIGHEST_US)`` → (clamped,
        accepted, per slot ascending: (start, keys, counts, sid, sum, min, max) as
        int64/float64 bytes, keys and sid sorted — what ``_add_to_slot`` appends — and,
        with exemplars, (ex_keys, ex_values, ex_at, ex_ids): the slot's best span per
        series and octave, as ``ExemplarSlots.add`` keeps them).
        Same checks, same order of registration, same chunks as record_durations
        (tests/receiver/test_fast_spans.py compares the two)."""
        result = RecordResult()
        now = self.clock()
        too_old, future, used = batch.time_filter(now - self.settings.lateness_seconds * NS,
                                                  now + self.settings.future_skew_seconds * NS)
        result.reject(REASON_TOO_OLD, too_old)
        result.reject(REASON_IN_FUTURE, future)
        used = np.frombuffer(used, np.int64).tolist()
        if not used:
            return result
        with self._lock:
            locals_ = np.full(len(label_sets), -1, np.int64)
            for i in used:
                locals_[i] = self._local_id(metric, label_sets[i], KIND_HDR, unit, help)
            clamped, accepted, slots = batch.reduce(locals_.tobytes(), self._slot_ns, hdr.COUNTS_LEN, hdr.HIGHEST_US,
                                                    self.settings.exemplars)
            result.clamped = clamped
            self.clamped_total += clamped
            for start, keys, counts, sid, sums, mins, maxs, *ex in slots:
                if ex:
                    self._exemplars.add_reduced(start, *ex)
                slot = self._slot(start)
                slot.keys.append(np.frombuffer(keys, np.int64))
                slot.counts.append(np.frombuffer(counts, np.int64))
                slot.stat_sid.append(np.frombuffer(sid, np.int64))
                slot.stat_sum.append(np.frombuffer(sums, np.float64))
                slot.stat_min.append(np.frombuffer(mins, np.float64))
                slot.stat_max.append(np.frombuffer(maxs, np.float64))
                if len(slot.keys) >= self.COMPACT_EVERY:
                    slot.compact()
        result.accepted += accepted
        return result

    def _add_to_slot(self, start: int, sid: np.ndarray, idx: np.ndarray, seconds: np.ndarray) -> None:
        slot = self._slot(start)
        k, c = _reduce(sid * hdr.COUNTS_LEN + idx, np.ones(len(sid), np.int64))
        slot.keys.append(k)
        slot.counts.append(c)
        u, inv = np.unique(sid, return_inverse=True)
        s = np.zeros(len(u))
        np.add.at(s, inv, seconds)
        mn = np.full(len(u), np.inf)
        np.minimum.at(mn, inv, seconds)
        mx = np.full(len(u), -np.inf)
        np.maximum.at(mx, inv, seconds)
        slot.stat_sid.append(u)
        slot.stat_sum.append(s)
        slot.stat_min.append(mn)
        slot.stat_max.append(mx)
        if len(slot.keys) >= self.COMPACT_EVERY:
            slot.compact()

    def record_hdr(self, metric: str, labels: Labels, end_ns: int, idx: np.ndarray, cnt: np.ndarray,
                   sum_s: float, min_s: float | None = None, max_s: float | None = None,
                   unit: str = "s", help: str = "") -> RecordResult:
        """Record a pre-bucketed histogram (HDR indices and counts), e.g. an OTLP
        exponential histogram mapped by ``collector.aggregate.expo``."""
        result = RecordResult()
        total = int(np.sum(cnt))
        if not self._time_ok(np.array([end_ns], np.int64), result)[0]:
            result.rejected, result.reasons = 1, Counter({next(iter(result.reasons)): 1})
            return result
        start = (end_ns // self._slot_ns) * self._slot_ns
        idx = np.asarray(idx, np.int64)
        cnt = np.asarray(cnt, np.int64)
        if min_s is None or max_s is None:
            nz = idx[cnt > 0]
            min_s = float(hdr.lower_seconds(nz.min())) if len(nz) and min_s is None else (min_s or 0.0)
            max_s = float(hdr.upper_seconds(nz.max())) if len(nz) and max_s is None else (max_s or 0.0)
        with self._lock:
            local = self._local_id(metric, labels, KIND_HDR, unit, help)
            slot = self._slot(start)
            slot.keys.append(local * hdr.COUNTS_LEN + idx)
            slot.counts.append(cnt)
            if total:
                slot.stat_sid.append(np.array([local]))
                slot.stat_sum.append(np.array([float(sum_s)]))
                slot.stat_min.append(np.array([float(min_s)]))
                slot.stat_max.append(np.array([float(max_s)]))
            if len(slot.keys) >= self.COMPACT_EVERY:
                slot.compact()
        result.accepted = 1
        return result

    def record_custom(self, metric: str, labels: Labels, end_ns: int, bounds: tuple[float, ...],
                      counts: np.ndarray, sum_s: float, unit: str = "s", help: str = "") -> RecordResult:
        """Record an explicit-bucket histogram delta; it keeps its own bounds."""
        result = RecordResult()
        if not self._time_ok(np.array([end_ns], np.int64), result)[0]:
            return result
        counts = np.asarray(counts, np.int64)
        start = (end_ns // self._slot_ns) * self._slot_ns
        with self._lock:
            local = self._local_id(metric, labels, KIND_CUSTOM, unit, help)
            entry = self._slot(start).custom.setdefault((local, tuple(bounds)), [np.zeros(len(counts), np.int64), 0.0])
            entry[0] = entry[0] + counts
            entry[1] += float(sum_s)
        result.accepted = 1
        return result

    def record_exemplars(self, metric: str, labels: Labels, slot_ns: int, values: np.ndarray, at_ns: np.ndarray,
                         ids: np.ndarray) -> int:
        """Exemplars that came with a data point (OTLP metrics, remote write) of a
        series recorded just before: kept in the slot of ``slot_ns`` as span
        exemplars are. Returns how many were usable (a known series, a finite value,
        a trace id)."""
        if not self.settings.exemplars or not len(values):
            return 0
        if not self._time_ok(np.array([slot_ns], np.int64), RecordResult())[0]:
            return 0   # the point itself was refused for its time
        values = np.asarray(values, np.float64)
        ok = np.isfinite(values)
        with self._lock:
            local = self._local.get((metric, labels))
            if local is None or not ok.any():
                return 0
            if not ok.all():
                values, at_ns, ids = values[ok], np.asarray(at_ns)[ok], ids[ok]
            idx, _, _ = hdr.index_of_seconds(np.maximum(values, 0.0))
            start = (slot_ns // self._slot_ns) * self._slot_ns
            self._exemplars.add(start, np.full(len(values), local, np.int64), idx, values,
                                np.asarray(at_ns, np.int64), ids)
        return int(len(values))

    def record_samples(self, metric: str, kind: str, label_sets: list[Labels], which: np.ndarray,
                       ts_ns: np.ndarray, values: np.ndarray, unit: str = "", help: str = "",
                       check_time: bool = True) -> RecordResult:
        """Record float samples (counters, gauges, recorded series)."""
        assert kind in (KIND_COUNTER, KIND_GAUGE)
        result = RecordResult()
        which = np.asarray(which, np.int64)
        ts_ns = np.asarray(ts_ns, np.int64)
        values = np.asarray(values, np.float64)
        if check_time:
            ok = self._time_ok(ts_ns, result)
            which, ts_ns, values = which[ok], ts_ns[ok], values[ok]
        if len(which) == 0:
            return result
        with self._lock:
            locals_ = np.array([self._local_id(metric, ls, kind, unit, help) for ls in label_sets], np.int64)
            sid64 = np.array(self._sid64, dtype=np.uint64)[locals_[which]]
            self._samples.append((sid64, ts_ns, values))
        result.accepted = len(which)
        return result

    # -- reading --------------------------------------------------------------
    def _slot_rows(self, slot: _Slot, sid64: np.ndarray) -> HistRows:
        parts = []
        slot.compact()
        if slot.keys:
            keys, counts = slot.keys[0], slot.counts[0]
            local = keys // hdr.COUNTS_LEN
            idx = (keys % hdr.COUNTS_LEN).astype(np.int32)
            # keys are sorted, so rows of one series are contiguous
            u, first = np.unique(local, return_index=True)
            offsets = np.append(first, len(keys)).astype(np.int64)
            row_count = np.add.reduceat(counts, first) if len(first) else np.zeros(0, np.int64)
            ssid, ssum, smin, smax = (slot.stat_sid[0], slot.stat_sum[0], slot.stat_min[0], slot.stat_max[0]) \
                if slot.stat_sid else (np.zeros(0, np.int64),) * 4
            pos = np.searchsorted(ssid, u)
            pos_ok = (pos < len(ssid)) & (ssid[np.minimum(pos, max(len(ssid) - 1, 0))] == u) if len(ssid) else \
                np.zeros(len(u), bool)
            safe = np.minimum(pos, max(len(ssid) - 1, 0))
            n = len(u)
            parts.append(HistRows(
                sid64[u], np.full(n, slot.start, np.int64), np.full(n, self.settings.slot_seconds, np.int32),
                row_count.astype(np.int64),
                np.where(pos_ok, ssum[safe] if len(ssid) else 0.0, 0.0),
                np.where(pos_ok, smin[safe] if len(ssid) else 0.0, 0.0),
                np.where(pos_ok, smax[safe] if len(ssid) else 0.0, 0.0),
                offsets, idx, counts.astype(np.int64)))
        if slot.custom:
            items = sorted(slot.custom.items(), key=lambda kv: kv[0][0])
            n = len(items)
            cnts = [v[0] for _, v in items]
            lens = np.array([len(c) for c in cnts], np.int64)
            offsets = np.zeros(n + 1, np.int64)
            np.cumsum(lens, out=offsets[1:])
            parts.append(HistRows(
                sid64[np.array([k[0] for k, _ in items], np.int64)], np.full(n, slot.start, np.int64),
                np.full(n, self.settings.slot_seconds, np.int32),
                np.array([int(c.sum()) for c in cnts], np.int64), np.array([v[1] for _, v in items]),
                np.full(n, np.nan), np.full(n, np.nan), offsets,
                np.concatenate([np.arange(len(c), dtype=np.int32) for c in cnts]),
                np.concatenate(cnts).astype(np.int64), tuple(k[1] for k, _ in items)))
        return HistRows.concat(parts)

    def take_closed(self, force: bool = False) -> WriteBatch:
        """Remove and return the slots that have ended (all of them when
        ``force``), the pending samples and the series first seen since the last
        call."""
        now = self.clock()
        limit = now - self._slot_ns - self.settings.flush_grace_seconds * NS
        with self._lock:
            starts = [s for s in self._slots if force or s <= limit]
            slots = [self._slots.pop(s) for s in sorted(starts)]
            samples, self._samples = self._samples, []
            new_series, self._new_series = self._new_series, []
            sid64 = np.array(self._sid64, dtype=np.uint64)
            hist = HistRows.concat([self._slot_rows(s, sid64) for s in slots])
            ex_starts = [s for s in self._exemplars.starts() if force or s <= limit]
            exemplars = self._exemplars.take(sorted(ex_starts), sid64)
        samp = SampleRows.concat([SampleRows(*t) for t in samples])
        return WriteBatch(series=new_series, hist=hist, samples=samp, exemplars=exemplars)

    def putback(self, batch: WriteBatch, adopt: bool = False) -> None:
        """Return a batch that could not be written, so the next flush retries it;
        ``adopt``: a receiver worker's batch, whose series not known here are registered."""
        with self._lock:
            series = [s for s in batch.series if (s.metric, s.labels) not in self._local] if adopt else batch.series
            for s in series if adopt else ():
                self.catalog.add(s)
                self._register_known(s)
            self._new_series = series + self._new_series
            if len(batch.samples):
                self._samples.insert(0, (batch.samples.series_id, batch.samples.ts, batch.samples.value))
            h = batch.hist
            if not len(h) and not len(batch.exemplars):
                return
            by_id = {sid: i for i, sid in enumerate(self._sid64)}
            self._exemplars.putback(batch.exemplars, by_id)
            local = np.array([by_id[int(x)] for x in h.series_id.tolist()], np.int64)
            custom = np.array([b is not None for b in h.bounds], bool) if h.bounds else np.zeros(len(h), bool)
            lens = np.diff(h.offsets)
            for start in np.unique(h.ts[~custom]).tolist():   # HDR rows: one chunk per slot
                rows = np.nonzero((h.ts == start) & ~custom)[0]
                part = h.take(rows)
                slot = self._slot(int(start))
                slot.keys.append(np.repeat(local[rows], lens[rows]) * hdr.COUNTS_LEN + part.idx.astype(np.int64))
                slot.counts.append(part.cnt)
                slot.stat_sid.append(local[rows])
                slot.stat_sum.append(part.sum)
                slot.stat_min.append(np.nan_to_num(part.min, nan=np.inf))
                slot.stat_max.append(np.nan_to_num(part.max, nan=-np.inf))
            for r in np.nonzero(custom)[0].tolist():             # explicit-bucket rows keep their bounds
                a, b = h.offsets[r], h.offsets[r + 1]
                entry = self._slot(int(h.ts[r])).custom.setdefault((int(local[r]), h.bounds[r]),
                                                                   [np.zeros(b - a, np.int64), 0.0])
                entry[0] = entry[0] + h.cnt[a:b]
                entry[1] += float(h.sum[r])

    def snapshot(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> tuple[HistRows, SampleRows]:
        """What is still in memory for these series: slots starting in
        [start_ns, end_ns) and samples in [start_ns, end_ns]."""
        want = np.asarray(series_ids, dtype=np.uint64)
        with self._lock:
            sid64 = np.array(self._sid64, dtype=np.uint64)
            rows = [self._slot_rows(s, sid64) for st, s in self._slots.items() if start_ns <= st < end_ns]
            samples = list(self._samples)
        hist = HistRows.concat(rows)
        if len(hist):
            hist = hist.take(np.nonzero(np.isin(hist.series_id, want))[0])
        samp = SampleRows.concat([SampleRows(*t) for t in samples])
        if len(samp):
            keep = np.isin(samp.series_id, want) & (samp.ts >= start_ns) & (samp.ts <= end_ns)
            samp = SampleRows(samp.series_id[keep], samp.ts[keep], samp.value[keep])
        return hist, samp

    def snapshot_exemplars(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> ExemplarRows:
        """Exemplars still in memory for these series, of slots starting in [start_ns, end_ns)."""
        want = np.asarray(series_ids, dtype=np.uint64)
        with self._lock:
            sid64 = np.array(self._sid64, dtype=np.uint64)
            return self._exemplars.snapshot(sid64, want, start_ns, end_ns)

    def pending_slots(self) -> int:
        return len(self._slots)
