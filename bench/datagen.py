"""Synthetic span-latency histograms for the query and rule benchmarks, written
straight into a DuckDBStore through its ``write(WriteBatch)`` API (no OTLP).

Series: ``traces_span_metrics_duration_seconds{service_name="s<i>", http_route="/r<j>"}``
for ``services`` × ``routes`` combinations. Each series has its own request rate
(Poisson, 10–40 requests per 10 s slot) and a log-normal latency (median 20–300 ms,
sigma 0.35–0.7), which gives ~20–40 non-empty HDR buckets per row. A few routes are
slow (median ~0.8 s) so latency rules have something to fire on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.aggregate import hdr
from collector.model import KIND_HDR, NS, HistRows, Series, make_labels, series_id
from collector.query.selectors import SPAN_DURATION
from collector.store.base import WriteBatch


@dataclass(frozen=True)
class Profile:
    sids: np.ndarray      # uint64, per series
    rate: np.ndarray      # mean requests per slot
    mu: np.ndarray        # log-normal mu (log seconds)
    sigma: np.ndarray
    series: list[Series]


def make_series(services: int = 10, routes: int = 100, seed: int = 1) -> Profile:
    rnd = np.random.default_rng(seed)
    series = []
    for s in range(services):
        for r in range(routes):
            lab = make_labels({"service_name": f"s{s}", "http_route": f"/r{r}"})
            series.append(Series(series_id(SPAN_DURATION, lab), SPAN_DURATION, lab, KIND_HDR, "s",
                                 "Duration of SERVER spans."))
    n = len(series)
    median = np.exp(rnd.uniform(np.log(0.02), np.log(0.3), n))
    slow = rnd.random(n) < 0.03
    median[slow] = rnd.uniform(0.6, 1.2, int(slow.sum()))
    return Profile(np.array([x.id for x in series], np.uint64), rnd.uniform(10, 40, n), np.log(median),
                   rnd.uniform(0.35, 0.7, n), series)


def slots_rows(p: Profile, first_slot_ns: int, n_slots: int, slot_s: int = 10, seed: int = 0) -> HistRows:
    """One HDR row per series per slot for ``n_slots`` slots from ``first_slot_ns``."""
    rnd = np.random.default_rng(seed)
    S = len(p.sids)
    n_rows = S * n_slots
    row_series = np.tile(np.arange(S), n_slots)                    # slot-major: all series of slot 0, ...
    row_ts = first_slot_ns + np.repeat(np.arange(n_slots, dtype=np.int64), S) * slot_s * NS
    counts = np.maximum(rnd.poisson(p.rate[row_series]), 1)
    obs_row = np.repeat(np.arange(n_rows), counts)
    vals = np.exp(p.mu[row_series][obs_row] + p.sigma[row_series][obs_row] * rnd.standard_normal(len(obs_row)))
    idx, _, _ = hdr.index_of_seconds(vals)
    keys, cnt = np.unique(obs_row.astype(np.int64) * hdr.COUNTS_LEN + idx, return_counts=True)
    key_row = keys // hdr.COUNTS_LEN
    offsets = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(key_row, minlength=n_rows), out=offsets[1:])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return HistRows(p.sids[row_series], row_ts, np.full(n_rows, slot_s, np.int32), counts.astype(np.int64),
                    np.add.reduceat(vals, starts), np.minimum.reduceat(vals, starts),
                    np.maximum.reduceat(vals, starts), offsets, (keys % hdr.COUNTS_LEN).astype(np.int32),
                    cnt.astype(np.int64))


def fill(store, p: Profile, end_ns: int, seconds: int, slot_s: int = 10, chunk_slots: int = 180,
         progress=None) -> int:
    """Write ``seconds`` of slots ending at ``end_ns`` (slot-aligned), ``chunk_slots``
    slots per write. Returns the number of rows written."""
    n_slots = seconds // slot_s
    first = end_ns - n_slots * slot_s * NS
    written = 0
    for k, c0 in enumerate(range(0, n_slots, chunk_slots)):
        n = min(chunk_slots, n_slots - c0)
        rows = slots_rows(p, first + c0 * slot_s * NS, n, slot_s, seed=k)
        store.write(WriteBatch(series=p.series if k == 0 else [], hist=rows))
        written += len(rows)
        if progress:
            progress(written, n_slots * len(p.sids))
    return written
