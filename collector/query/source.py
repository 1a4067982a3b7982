"""What the query engine reads: the series catalog, and rows from the store
merged with what the aggregator still holds in memory (read your writes)."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from collector.model import ExemplarRows, HistRows, SampleRows, SeriesCatalog


class DataSource(Protocol):
    catalog: SeriesCatalog

    def read_hist(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> HistRows:
        """Histogram slots starting in [start_ns, end_ns); at most one row per
        (series, slot start) — rows from memory and disk of one slot are merged.
        A source whose ``reads_by_slot_end`` is true also takes ``min_end_ns``:
        rows whose slot ends at or before it may then be left out."""

    def read_samples(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> SampleRows:
        """Float samples in [start_ns, end_ns], sorted by (series, ts)."""


class LiveSource:
    """Store + in-memory aggregator."""

    def __init__(self, store, aggregator, head=None):
        self.store = store
        self.aggregator = aggregator
        self.head = head   # collector.query.head.Head: recent slots in memory, or None
        self.catalog = aggregator.catalog
        self.sync = None   # receiver workers: called once per query, before it reads (read your writes)

    def before_query(self) -> None:
        if self.sync is not None:
            self.sync()

    reads_by_slot_end = True   # read_hist takes min_end_ns (see DataSource)

    def in_memory(self, start_ns: int, min_end_ns: int | None) -> bool:
        """Whether a read of rows from ``start_ns`` (ending after ``min_end_ns``) is answered from the head."""
        if self.head is None:
            return False
        a = start_ns if min_end_ns is None else max(start_ns, min_end_ns - self.head.slot_ns + 1)
        return self.head.covers(a)

    def read_hist(self, series_ids, start_ns, end_ns, min_end_ns: int | None = None,
                  coarsest_res: int | None = None, buckets: bool = True) -> HistRows:
        """``buckets`` false: the caller needs count and sum only (rows may come without buckets)."""
        from collector.aggregate.merge import merge_rows

        ids = np.asarray(series_ids, dtype=np.uint64)
        mem, _ = self.aggregator.snapshot(ids, start_ns, end_ns)
        disk = None
        if self.head is not None:
            # Rows ending at or before min_end are not needed: those of the head's slot
            # start after min_end - slot. The head answers when it holds all the rest.
            a = start_ns if min_end_ns is None else max(start_ns, min_end_ns - self.head.slot_ns + 1)
            disk = self.head.read_hist(ids, a, end_ns)
        if disk is None:
            kw = {} if buckets else {"buckets": False}
            disk = self.store.read_hist(ids, start_ns, end_ns, min_end_ns=min_end_ns, coarsest_res=coarsest_res,
                                        **kw)
        if not len(mem):
            return disk
        # Only stored rows as recent as the slots in memory can be the same slot: merge
        # those, pass the rest through (a day of rows merged whole took seconds).
        recent = disk.ts >= int(mem.ts.min())
        if not recent.any():
            return HistRows.concat([disk, mem])
        merged = merge_rows(HistRows.concat([disk.take(np.nonzero(recent)[0]), mem]))
        if recent.all():
            return merged
        return HistRows.concat([disk.take(np.nonzero(~recent)[0]), merged])

    def read_samples(self, series_ids, start_ns, end_ns) -> SampleRows:
        ids = np.asarray(series_ids, dtype=np.uint64)
        _, mem = self.aggregator.snapshot(ids, start_ns, end_ns)
        disk = self.store.read_samples(ids, start_ns, end_ns)
        rows = SampleRows.concat([disk, mem])
        if not len(mem):
            return rows
        order = np.lexsort((rows.ts, rows.series_id))
        return SampleRows(rows.series_id[order], rows.ts[order], rows.value[order])

    def read_exemplars(self, series_ids, start_ns, end_ns) -> ExemplarRows:
        """Exemplars of slots starting in [start_ns, end_ns), memory and disk merged
        (one per series, slot and octave: the slowest)."""
        from collector.aggregate.exemplars import dedupe

        ids = np.asarray(series_ids, dtype=np.uint64)
        mem = self.aggregator.snapshot_exemplars(ids, start_ns, end_ns)
        read = getattr(self.store, "read_exemplars", None)
        disk = read(ids, start_ns, end_ns) if read is not None else ExemplarRows.empty()
        return dedupe(ExemplarRows.concat([disk, mem]))
