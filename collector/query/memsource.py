"""A DataSource over rows held in memory: for tests, ``tocsin rules test`` and
anything that builds series from plain data."""
from __future__ import annotations

import numpy as np

from collector.aggregate.merge import merge_rows
from collector.model import NS, HistRows, SampleRows, SeriesCatalog


class MemorySource:
    def __init__(self, catalog: SeriesCatalog | None = None, hist: HistRows | None = None,
                 samples: SampleRows | None = None, native: dict | None = None):
        self.catalog = catalog or SeriesCatalog()
        self.hist = merge_rows(hist) if hist is not None and len(hist) else HistRows.empty()
        s = samples if samples is not None else SampleRows.empty()
        order = np.lexsort((s.ts, s.series_id))
        self.samples = SampleRows(s.series_id[order], s.ts[order], s.value[order])
        self.reads = 0  # how many read_* calls were made (tests check selectors read once)
        # Series of kind KIND_NATIVE: {sid: (ts int64 ns sorted, [exphist.NH or float])} (see nativesel).
        self.native = native or {}

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

    def read_native(self, series_ids, start_ns: int, end_ns: int) -> dict:
        """Native-histogram series' samples in [start_ns, end_ns] (nativesel)."""
        self.reads += 1
        out = {}
        for sid in np.asarray(series_ids, dtype=np.uint64).tolist():
            got = self.native.get(int(sid))
            if got is None:
                continue
            ts, vals = got
            a, b = np.searchsorted(ts, start_ns, side="left"), np.searchsorted(ts, end_ns, side="right")
            if b > a:
                out[int(sid)] = (ts[a:b], vals[a:b])
        return out
