"""Aggregation operators (sum, avg, min, max, count, group, stddev, stdvar,
topk, bottomk, quantile, count_values) by/without labels, over all steps at once."""
from __future__ import annotations

import numpy as np
import xxhash

from collector import cancel
from collector.query import annotations
from collector.query import hist as H
from collector.query import kahan as K
from collector.query.errors import BadData
from collector.query.seriesnotation import format_value
from collector.query.values import Scalar, String, Vec, lkey


def _group_labels(labels: dict, by: list[str] | None, without: list[str] | None) -> dict:
    if by is not None:
        return {k: labels[k] for k in by if k in labels}
    drop = set(without or ()) | {"__name__"}
    return {k: v for k, v in labels.items() if k not in drop}


def _groups(labels: list[dict], by, without):
    if by is not None and not by:   # one group: no labels to look at (count(x) over 100 000 series)
        return np.zeros(len(labels), np.int64), [{}]
    keys: dict[tuple, int] = {}
    out_labels: list[dict] = []
    gid = np.zeros(len(labels), np.int64)
    for i, l in enumerate(labels):
        g = _group_labels(l, by, without)
        k = lkey(g)
        if k not in keys:
            keys[k] = len(out_labels)
            out_labels.append(g)
        gid[i] = keys[k]
    return gid, out_labels


def aggregate(op: str, v: Vec, by, without, param, max_cells: int) -> Vec:
    S = v.vals.shape[1]
    if op == "limit_ratio":
        return _limit_ratio(v, param, max_cells)
    if op in ("quantile",) and isinstance(param, Scalar):
        bad = param.vals[np.isnan(param.vals) | (param.vals < 0) | (param.vals > 1)]
        if len(bad):
            annotations.warn(f"quantile value should be between 0 and 1, got {format_value(float(bad[0]))}")
    if v.hists and op in _HIST_IGNORED:
        # As Prometheus: histogram samples take no part; an info says so.
        annotations.info(f"ignored histogram in {op} aggregation")
        v = Vec(v.labels, v.vals, v.mask, [], v.ts, v.sort)
    if v.hists and op in ("count", "group"):
        return _floats(op, _with_hist_presence(v, max_cells), by, without, param)
    if v.hists and op == "limitk":
        return _limitk_mixed(v, by, without, param, max_cells)
    out = _floats(op, v, by, without, param) if len(v.labels) else Vec.empty(S)
    if v.hists:
        out.hists = _hists(op, v, by, without, max_cells)
        if len(out.labels) and op in ("sum", "avg"):
            _drop_mixed(op, out, max_cells)
    return out


def _drop_mixed(op: str, out: Vec, max_cells: int) -> None:
    """A group with float and histogram samples at one step has no result there
    (Prometheus answers nothing for it, with a warning)."""
    rows = {lkey(l): i for i, l in enumerate(out.labels)}
    hists = []
    for h in out.hists:
        i = rows.get(lkey(h.labels))
        if i is None:
            hists.append(h)
            continue
        m = h.get(max_cells)
        both = m.present & out.mask[i]
        if both.any():
            annotations.warn(f"encountered a mix of histograms and floats for {op} aggregation")
            out.mask[i] &= ~both
            m = H.HMat(m.schema, m.keys, m.counts, m.count, m.sum, m.present & ~both, m.scale)
            h = H.HSeries(h.labels, mat=m)
        hists.append(h)
    out.hists = hists


# Aggregations that take only float samples (Prometheus ignores histograms with an info).
_HIST_IGNORED = {"min", "max", "topk", "bottomk", "quantile", "stddev", "stdvar", "count_values"}


def _with_hist_presence(v: Vec, max_cells: int) -> Vec:
    """Histogram series as rows that are present where the histogram is (count/group)."""
    S = v.vals.shape[1]
    labels = list(v.labels) + [h.labels for h in v.hists]
    pres = [h.get(max_cells).present for h in v.hists]
    vals = np.vstack([v.vals] + [np.ones((1, S))] * len(pres)) if pres else v.vals
    mask = np.vstack([v.mask] + [p[None, :] for p in pres]) if pres else v.mask
    return Vec(labels, vals, mask)


def _series_order(v: Vec) -> Vec:
    """limitk keeps the first k series of a group in input order, which for
    Prometheus is series order (sorted label sets), whatever the values or the
    sample kind: rows valued by their rank in that order."""
    rank = np.empty(len(v.labels))
    rank[sorted(range(len(v.labels)), key=lambda i: lkey(v.labels[i]))] = np.arange(len(v.labels))
    return Vec(v.labels, np.broadcast_to(rank[:, None], v.vals.shape).copy(), v.mask)


def _limitk_mixed(v: Vec, by, without, param, max_cells: int) -> Vec:
    """limitk over floats and histograms: the first k series per group in series order."""
    nf = len(v.labels)
    both = _series_order(_with_hist_presence(v, max_cells))
    picked = _topk("limitk", both, by, without, param)
    out = Vec(list(v.labels), v.vals.copy(), picked.mask[:nf].copy())
    hists = []
    for j, h in enumerate(v.hists):
        m = h.get(max_cells)
        keep = picked.mask[nf + j]
        if keep.any():
            hists.append(H.HSeries(h.labels, mat=H.HMat(m.schema, m.keys, m.counts, m.count, m.sum,
                                                         m.present & keep, m.scale)))
    out.hists = hists
    return out


def ratio_offset(labels: dict) -> float:
    """Prometheus's HashRatioSampler: the labels' xxhash64 (name, 0xff, value, 0xff
    for each label in name order) over the largest uint64, in [0, 1]."""
    buf = bytearray()
    for k, x in sorted(labels.items()):
        buf += k.encode() + b"\xff" + x.encode() + b"\xff"
    return xxhash.xxh64_intdigest(bytes(buf)) / float(2 ** 64 - 1)


def _limit_ratio(v: Vec, param, max_cells: int) -> Vec:
    """limit_ratio(r, v): a deterministic sample of series by label hash; r < 0 takes
    the complement of limit_ratio(1 + r, v), as Prometheus."""
    if not isinstance(param, Scalar):
        raise BadData("expected a number as the first argument of limit_ratio()")
    r = param.vals
    if np.isnan(r).any():
        raise BadData("Ratio value NaN is NaN")
    if (np.abs(r) > 1).any():
        bad = float(r[np.abs(r) > 1][0])
        annotations.warn(f"ratio value should be between -1 and 1, got {format_value(bad)}, capping to "
                         f"{format_value(float(np.clip(bad, -1, 1)))}")
    r = np.clip(r, -1.0, 1.0)

    def take(labels: dict) -> np.ndarray:
        off = ratio_offset(labels)
        return np.where(r >= 0, off < r, off >= 1.0 + r) & (r != 0)

    mask = v.mask.copy()
    for i, l in enumerate(v.labels):
        cancel.check()
        mask[i] &= take(l)
    out = Vec(list(v.labels), v.vals.copy(), mask)
    for h in v.hists:
        m = h.get(max_cells)
        keep = m.present & take(h.labels)
        if keep.any():
            out.hists.append(H.HSeries(h.labels, mat=H.HMat(m.schema, m.keys, m.counts, m.count, m.sum, keep,
                                                            m.scale)))
    return out


def _floats(op, v: Vec, by, without, param) -> Vec:
    vals, mask = v.vals, v.mask
    n, S = vals.shape
    if op == "limitk":
        picked = _topk(op, _series_order(v), by, without, param)
        return Vec(list(v.labels), v.vals.copy(), picked.mask)
    if op in ("topk", "bottomk"):
        return _topk(op, v, by, without, param)
    if op == "count_values":
        return _count_values(v, by, without, param)
    gid, glabels = _groups(v.labels, by, without)
    G = len(glabels)
    cnt = np.zeros((G, S))
    np.add.at(cnt, gid, mask.astype(float))
    present = cnt > 0
    if op == "sum":
        res = K.group_sum(vals, mask, gid, G)
    elif op in ("avg", "stddev", "stdvar"):
        mean = K.group_avg(vals, mask, gid, G, cnt)
        if op == "avg":
            res = mean
        else:
            with np.errstate(invalid="ignore"):
                dev = (vals - mean[gid]) ** 2
            with np.errstate(invalid="ignore", divide="ignore"):
                res = K.group_sum(dev, mask, gid, G) / cnt
            if op == "stddev":
                res = np.sqrt(res)
    elif op == "count":
        res = cnt
    elif op == "group":
        res = np.ones((G, S))
    elif op in ("min", "max"):
        res = np.full((G, S), np.nan)
        fn = np.fmin if op == "min" else np.fmax
        fn.at(res, gid, np.where(mask, vals, np.nan))
    elif op == "quantile":
        q = param.vals
        res = np.full((G, S), np.nan)
        for g in range(G):
            sub, m = vals[gid == g], mask[gid == g]
            for s in range(S):
                col = sub[m[:, s], s]
                if len(col):
                    res[g, s] = _q(q[s], col)
    else:
        raise BadData(f"aggregation {op}() is not supported")
    return Vec(glabels, res, present)


def _q(q, col):
    from collector.query.rangefuncs import _quantile
    return _quantile(float(q), col)


def _topk(op, v: Vec, by, without, param) -> Vec:
    if not isinstance(param, Scalar):
        raise BadData(f"{op}() needs a number as its first argument")
    k = np.nan_to_num(param.vals, nan=0.0).astype(np.int64)
    gid, _ = _groups(v.labels, by, without)
    keep = np.zeros_like(v.mask)
    for g in np.unique(gid):
        rows = np.nonzero(gid == g)[0]
        x = v.vals[rows]
        x = np.where(np.isnan(x), -np.inf if op == "topk" else np.inf, x)
        x = np.where(v.mask[rows], x, np.nan)
        # NaN (absent) sorts last either way
        order = np.argsort(-x if op == "topk" else x, axis=0, kind="stable")
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(len(rows))[:, None].repeat(x.shape[1], 1), axis=0)
        keep[rows] = (rank < k[None, :]) & v.mask[rows]
    return Vec(list(v.labels), v.vals.copy(), keep)


def _count_values(v: Vec, by, without, param) -> Vec:
    if not isinstance(param, String):
        raise BadData("count_values() needs a label name as its first argument")
    S = v.vals.shape[1]
    acc: dict[tuple, tuple[dict, np.ndarray]] = {}
    for i, l in enumerate(v.labels):
        cancel.check()
        base = _group_labels(l, by, without)
        for s in np.nonzero(v.mask[i])[0]:
            lab = dict(base)
            lab[param.s] = format_value(float(v.vals[i, s]))
            k = lkey(lab)
            if k not in acc:
                acc[k] = (lab, np.zeros(S))
            acc[k][1][s] += 1
    labels = [a[0] for a in acc.values()]
    vals = [a[1] for a in acc.values()]
    return Vec.of(labels, vals, [x > 0 for x in vals], S)


def _hists(op, v: Vec, by, without, max_cells) -> list[H.HSeries]:
    if op not in ("sum", "avg", "count", "group"):
        raise BadData(f"aggregation {op}() is not supported for histogram series")
    if op in ("count", "group"):
        raise BadData(f"aggregation {op}() of histogram series is not supported; use histogram_count()")
    groups: dict[tuple, tuple[dict, list]] = {}
    for i, s in enumerate(v.hists):
        if not i & 127:
            cancel.check()
        g = _group_labels(s.labels, by, without)
        groups.setdefault(lkey(g), (g, []))[1].append(s)
    out = []
    for g, members in groups.values():
        cancel.check()
        m = H.merge_series(members, g, max_cells)
        if op == "avg":
            mats = [x.get(max_cells) for x in members]
            n = np.sum([x.present for x in mats], axis=0)
            mat = m.get(max_cells)
            mat.scale = mat.scale / np.maximum(n, 1)
            m = H.HSeries(g, mat=mat)
        out.append(m)
    return out
