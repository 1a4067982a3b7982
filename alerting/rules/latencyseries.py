"""``latency_series`` in rule unit tests: latency observations per step,
turned into HDR histogram rows (Tocsin's extension of promtool's format).

    latency_series:
      - series: 'traces_span_metrics_duration_seconds{service_name="checkout"}'
        values: ["120ms x100, 900ms x10", "_", "[120ms x100] x5"]

``values`` is a list with one entry per step (or one string with steps
separated by ``|``). A step lists the observations made during it: ``DUR`` or
``DUR xN`` (N observations of DUR), comma-separated; ``_`` or an empty string
is a step without requests; ``[...] xN`` repeats that step N times. The
observations of step i fill the slot that ends at step i's time, so a query
at step i sees them.
"""
from __future__ import annotations

import re

import numpy as np

from collector.durations import DurationError, parse_duration
from collector.aggregate import hdr
from collector.model import KIND_HDR, NS, HistRows, Series, SeriesCatalog, make_labels, series_id

_OBS = re.compile(r"^\s*(\S+?)\s*(?:x\s*(\d+))?\s*$")
_REPEAT = re.compile(r"^\s*\[(.*)\]\s*x\s*(\d+)\s*$")


class LatencySeriesError(ValueError):
    pass


def parse_step(text: str) -> list[tuple[float, int]]:
    text = text.strip()
    if text in ("", "_"):
        return []
    out = []
    for part in text.split(","):
        m = _OBS.match(part)
        if not m:
            raise LatencySeriesError(f"bad observation {part.strip()!r}: write e.g. 120ms x100")
        try:
            d = parse_duration(m.group(1), numbers_are_seconds=False)
        except DurationError as e:
            raise LatencySeriesError(str(e)) from None
        out.append((d, int(m.group(2) or 1)))
    return out


def parse_steps(values) -> list[list[tuple[float, int]]]:
    if isinstance(values, str):
        values = values.split("|")
    if not isinstance(values, list):
        raise LatencySeriesError("values must be a list with one entry per step")
    steps = []
    for v in values:
        v = str(v)
        m = _REPEAT.match(v)
        if m:
            steps.extend([parse_step(m.group(1))] * int(m.group(2)))
        else:
            steps.append(parse_step(v))
    return steps


def build_rows(entries: list[tuple[str, dict, list]], interval: float, catalog: SeriesCatalog,
               start: float = 0.0) -> HistRows:
    """HDR rows for (metric, labels, steps) entries; series are added to ``catalog``."""
    res = int(round(interval))
    if res < 1 or abs(res - interval) > 1e-9:
        raise LatencySeriesError(f"latency_series need a whole-second interval, got {interval}s")
    parts = []
    for metric, labels, steps in entries:
        lab = make_labels(labels)
        sid = series_id(metric, lab)
        catalog.add(Series(sid, metric, lab, KIND_HDR, unit="s"))
        for i, obs in enumerate(steps):
            if not obs:
                continue
            secs = np.repeat(np.array([d for d, _ in obs]), [n for _, n in obs])
            idx, _, _ = hdr.index_of_seconds(secs)
            uidx, cnt = np.unique(idx, return_counts=True)
            ts = int(round((start + (i - 1) * interval) * NS))
            parts.append(HistRows(np.array([sid], np.uint64), np.array([ts], np.int64), np.array([res], np.int32),
                                  np.array([len(secs)], np.int64), np.array([secs.sum()]),
                                  np.array([secs.min()]), np.array([secs.max()]),
                                  np.array([0, len(uidx)], np.int64), uidx.astype(np.int32),
                                  cnt.astype(np.int64)))
    return HistRows.concat(parts)
