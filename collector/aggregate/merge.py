"""Merging histogram rows: the one operation behind late data, rollups and
read-your-writes. HDR rows merge exactly (same layout everywhere); custom-bucket
rows merge only with rows of the same bounds."""
from __future__ import annotations

import numpy as np

from collector.model import HistRows


def merge_rows(rows: HistRows, slot_ns: np.ndarray | None = None, res: int | None = None) -> HistRows:
    """Merge rows with equal (series, slot, bounds).

    With ``slot_ns``/``res`` given, every row is first moved to the start of the
    ``slot_ns``-wide slot holding it and labelled with resolution ``res`` (a
    rollup); otherwise rows keep their slot and only exact duplicates merge.
    """
    n = len(rows)
    if n == 0:
        return rows
    ts = rows.ts if slot_ns is None else (rows.ts // slot_ns) * slot_ns
    res_arr = rows.res if res is None else np.full(n, res, np.int32)
    bkey = np.zeros(n, np.int64)
    bounds_list: list = []
    if rows.bounds:
        seen: dict = {}
        for i, b in enumerate(rows.bounds):
            if b is not None:
                bkey[i] = seen.setdefault(b, len(seen) + 1)
        bounds_list = [None] + list(seen)
    order = np.lexsort((bkey, ts, rows.series_id))
    s_sid, s_ts, s_b = rows.series_id[order], ts[order], bkey[order]
    new_group = np.ones(n, bool)
    new_group[1:] = (s_sid[1:] != s_sid[:-1]) | (s_ts[1:] != s_ts[:-1]) | (s_b[1:] != s_b[:-1])
    if new_group.all() and slot_ns is None:
        return rows
    group_of_sorted = np.cumsum(new_group) - 1
    g = len(np.nonzero(new_group)[0])
    group = np.empty(n, np.int64)
    group[order] = group_of_sorted
    firsts = order[new_group]

    count = np.zeros(g, np.int64)
    np.add.at(count, group, rows.count)
    total = np.zeros(g)
    np.add.at(total, group, rows.sum)
    mn = np.full(g, np.inf)
    np.fmin.at(mn, group, rows.min)
    mx = np.full(g, -np.inf)
    np.fmax.at(mx, group, rows.max)
    mn[np.isinf(mn)] = np.nan
    mx[np.isinf(mx)] = np.nan

    lens = np.diff(rows.offsets)
    bucket_group = np.repeat(group, lens)
    # Index space: custom buckets and HDR indices never share a group, so one key works.
    key = bucket_group * (1 << 20) + rows.idx.astype(np.int64)
    u, inv = np.unique(key, return_inverse=True)
    cnt = np.zeros(len(u), np.int64)
    np.add.at(cnt, inv, rows.cnt)
    keep = cnt != 0
    u, cnt = u[keep], cnt[keep]
    ugroup = u >> 20
    idx = (u & ((1 << 20) - 1)).astype(np.int32)
    offsets = np.zeros(g + 1, np.int64)
    np.cumsum(np.bincount(ugroup, minlength=g), out=offsets[1:])
    bounds = tuple(bounds_list[bkey[f]] for f in firsts) if rows.bounds else ()
    return HistRows(rows.series_id[firsts], ts[firsts], res_arr[firsts], count, total, mn, mx,
                    offsets, idx, cnt, bounds)
