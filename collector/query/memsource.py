"""A DataSource over rows held in memory: for tests, ``tocsin rules test`` and
anything that builds series from plain data."""
from __future__ import annotations

import numpy as np

from collector.aggregate.merge import merge_rows
from collector.model import NS, HistRows, SampleRows, SeriesCatalog


class MemorySource:
    def __init__(self, catalog: SeriesCatalog | None = None, hist: HistRows | None = None,
                 samples: SampleRows | None = None):
        self.catalog = catalog or SeriesCatalog()
        self.hist = merge_rows(hist) if hist is not None and len(hist) else HistRows.empty()
        s = samples if samples is not None else SampleRows.empty()
        order = np.lexsort((s.ts, s.series_id))
        self.samples = SampleRows(s.series_id[order], s.ts[order], s.value[order])
        self.reads = 0  # how many read_* calls were made (tests check selectors read once)

    reads_by_slot_end = True

    def read_hist(self, series_ids, start_ns: int, end_ns: int, min_end_ns: int | None = None,
                  coarsest_res: int | None = None, buckets: bool = True) -> HistRows:  # hints change nothing here
        self.reads += 1
        h = self.hist
        ids = np.asarray(series_ids, dtype=np.uint64)
        keep = np.isin(h.series_id, ids) & (h.ts >= start_ns) & (h.ts < end_ns)
        if min_end_ns is not None:
            keep &= h.ts + h.res.astype(np.int64) * NS > min_end_ns
        return h.take(np.nonzero(keep)[0])

    def read_samples(self, series_ids, start_ns: int, end_ns: int) -> SampleRows:
        self.reads += 1
        s = self.samples
        ids = np.asarray(series_ids, dtype=np.uint64)
        keep = np.isin(s.series_id, ids) & (s.ts >= start_ns) & (s.ts <= end_ns)
        return SampleRows(s.series_id[keep], s.ts[keep], s.value[keep])
