"""Reading a selector's data once for a whole query: float samples per series,
histogram rows per series (as HistRaw), and histogram rows' count/sum as
delta-backed counters."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from collector.model import KIND_CUSTOM, NS, HistRows
from collector.query.hist import CUSTOM, HDR, HistRaw
from collector.query.selectors import COUNT, FLOAT, HIST, SUM, Exposed
from collector.query.stale import is_stale

MAX_RES_NS = 3600 * NS  # the coarsest stored resolution: a slot ending in a window starts up to this before it


@dataclass
class FloatData:
    ts: np.ndarray      # int64 ns
    vals: np.ndarray
    stale: np.ndarray   # bool


@dataclass
class DeltaData:
    """A counter backed by histogram rows: per slot end, the delta."""

    ends: np.ndarray
    deltas: np.ndarray


def _split(sid_sorted: np.ndarray) -> dict[int, slice]:
    if len(sid_sorted) == 0:
        return {}
    u, first = np.unique(sid_sorted, return_index=True)
    bounds = list(first) + [len(sid_sorted)]
    return {int(s): slice(bounds[i], bounds[i + 1]) for i, s in enumerate(u)}


def read_floats(source, sel: list[Exposed], lo_ns: int, hi_ns: int) -> tuple[dict[int, FloatData], int]:
    ids = np.array(sorted({e.sid for e in sel if e.access == FLOAT}), np.uint64)
    if not len(ids):
        return {}, 0
    rows = source.read_samples(ids, lo_ns, hi_ns)
    order = np.lexsort((rows.ts, rows.series_id))
    sid, ts, v = rows.series_id[order], rows.ts[order], rows.value[order]
    out = {}
    for s, sl in _split(sid).items():
        out[s] = FloatData(ts[sl], v[sl], is_stale(v[sl]))
    return out, len(ts)


def read_hist(source, sel: list[Exposed], lo_ns: int, hi_ns: int) -> tuple[dict[int, HistRows], int]:
    ids = np.array(sorted({e.sid for e in sel if e.access in (HIST, COUNT, SUM)}), np.uint64)
    if not len(ids):
        return {}, 0
    rows = source.read_hist(ids, lo_ns, hi_ns)
    order = np.argsort(rows.series_id, kind="stable")
    return {s: rows.take(order[sl]) for s, sl in _split(rows.series_id[order]).items()}, \
        len(rows) + int(rows.offsets[-1])


def slot_ends(rows: HistRows, now_ns: int) -> np.ndarray:
    """When each slot counts: its end, or its start for a slot still open (read
    your writes: what was acknowledged is visible to a query at ``now``, even when
    the caller's ``now`` was taken a moment before ours)."""
    ends = rows.ts + rows.res.astype(np.int64) * NS
    open_ = ends > now_ns
    if open_.any():
        ends = np.where(open_, rows.ts, ends)
    return ends


def to_raw(rows: HistRows, kind: str, now_ns: int) -> HistRaw:
    ends = slot_ends(rows, now_ns)
    lens = np.diff(rows.offsets)
    n = len(rows)
    count, total = rows.count.astype(np.float64), rows.sum.astype(np.float64)
    if kind != KIND_CUSTOM:
        return HistRaw(HDR, ends, count, total, np.ones(n), lens, rows.idx.astype(np.float64),
                       rows.cnt.astype(np.float64))
    keys = np.zeros(len(rows.idx))
    ent_row = np.repeat(np.arange(n), lens)
    pad: list[np.ndarray] = []
    by_bounds: dict[tuple, list[int]] = {}
    for i, b in enumerate(rows.bounds or [None] * n):
        by_bounds.setdefault(tuple(b or ()), []).append(i)
    for b, members in by_bounds.items():
        ub = np.array(list(b) + [np.inf])
        sel = np.isin(ent_row, members)
        keys[sel] = ub[rows.idx[sel]]
        # A padding row with every bound at count 0, so interpolation sees the real bucket edges.
        pad.append(ub)
    z = np.zeros(len(pad))
    return HistRaw(CUSTOM, np.concatenate([ends, np.full(len(pad), ends.min())]), np.concatenate([count, z]),
                   np.concatenate([total, z]), np.concatenate([np.ones(n), z]),
                   np.concatenate([lens, [len(p) for p in pad]]).astype(np.int64),
                   np.concatenate([keys] + pad), np.concatenate([rows.cnt.astype(np.float64)] +
                                                                [np.zeros(len(p)) for p in pad]))


def to_delta(rows: HistRows, access: str, now_ns: int) -> DeltaData:
    ends = slot_ends(rows, now_ns)
    vals = rows.count.astype(np.float64) if access == COUNT else rows.sum.astype(np.float64)
    order = np.argsort(ends, kind="stable")
    return DeltaData(ends[order], vals[order])


def delta_as_cumulative(d: DeltaData) -> FloatData:
    """A delta-backed counter as cumulative samples at the slot ends (read from
    the first stored slot, so values are totals since then)."""
    return FloatData(d.ends, np.cumsum(d.deltas), np.zeros(len(d.ends), bool))
