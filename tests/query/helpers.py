"""Plain-data DataSources for engine tests: histogram rows built from raw
durations, float series from promtool's notation."""
from __future__ import annotations

import numpy as np

from collector.aggregate import hdr
from collector.model import (KIND_CUSTOM, KIND_HDR, NS, HistRows, SampleRows, Series, SeriesCatalog,
                             make_labels, series_id)
from collector.query.memsource import MemorySource


class HistBuilder:
    """Collects histogram slots: ``add_hdr(metric, labels, slot_start_s, durations)``."""

    def __init__(self):
        self.catalog = SeriesCatalog()
        self.parts: list[HistRows] = []
        self.samples: list[SampleRows] = []

    def _series(self, metric, labels, kind) -> int:
        lab = make_labels(labels)
        sid = series_id(metric, lab)
        self.catalog.add(Series(sid, metric, lab, kind, "s"))
        return sid

    def add_hdr(self, metric: str, labels: dict, start_s: float, durations, res: int = 10) -> None:
        sid = self._series(metric, labels, KIND_HDR)
        d = np.asarray(durations, float)
        idx, _, _ = hdr.index_of_seconds(d)
        u, c = hdr.merge(idx, np.ones(len(idx), np.int64))
        self.parts.append(HistRows(np.array([sid], np.uint64), np.array([int(start_s * NS)], np.int64),
                                   np.array([res], np.int32), np.array([len(d)], np.int64),
                                   np.array([d.sum()]), np.array([d.min()]), np.array([d.max()]),
                                   np.array([0, len(u)], np.int64), u.astype(np.int32), c.astype(np.int64)))

    def add_custom(self, metric: str, labels: dict, start_s: float, bounds: tuple, counts, total: float,
                   res: int = 10) -> None:
        sid = self._series(metric, labels, KIND_CUSTOM)
        counts = np.asarray(counts, np.int64)
        nz = np.nonzero(counts)[0]
        self.parts.append(HistRows(np.array([sid], np.uint64), np.array([int(start_s * NS)], np.int64),
                                   np.array([res], np.int32), np.array([counts.sum()], np.int64),
                                   np.array([total]), np.array([np.nan]), np.array([np.nan]),
                                   np.array([0, len(nz)], np.int64), nz.astype(np.int32), counts[nz],
                                   (tuple(bounds),)))

    def add_float(self, metric: str, labels: dict, kind: str, points: list[tuple[float, float]]) -> None:
        sid = self._series(metric, labels, kind)
        self.samples.append(SampleRows(np.full(len(points), sid, np.uint64),
                                       np.array([int(t * NS) for t, _ in points], np.int64),
                                       np.array([v for _, v in points], float)))

    def source(self) -> MemorySource:
        return MemorySource(self.catalog, HistRows.concat(self.parts), SampleRows.concat(self.samples))
