"""Query results in the Prometheus API's JSON shapes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collector.query import hist as H
from collector.query.errors import BadData, Unprocessable
from collector.query.seriesnotation import format_value
from collector.query.values import Scalar, String, Vec, lkey


def fmt_time(ns: int) -> float | int:
    ms = int(ns) // 1_000_000
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


@dataclass
class Result:
    """``type`` is "vector", "matrix", "scalar" or "string"; ``data`` is the
    Prometheus ``result`` field (JSON-ready)."""

    type: str
    data: object
    value: tuple = ()  # scalar/string: (value, time)
    series: list = field(default_factory=list)  # vector: [(labels, float)] (histograms excluded)
    warnings: list = field(default_factory=list)  # "PromQL warning: ..." (the API's top-level "warnings")
    infos: list = field(default_factory=list)     # "PromQL info: ..." (the API's top-level "infos")
    hist_series: list = field(default_factory=list)  # vector: [(labels, HMat)] of the histogram samples (step 0)

    def to_json(self) -> dict:
        return {"resultType": self.type, "result": self.data}

    def annotations(self) -> dict:
        """The response's extra top-level fields, present only when not empty (as Prometheus)."""
        out = {}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.infos:
            out["infos"] = list(self.infos)
        return out

    def samples(self) -> list[tuple[dict, float]]:
        return list(self.series)


def _sorted_rows(v: Vec, s: int | None) -> list[int]:
    rows = list(range(len(v.labels)))
    if isinstance(v.sort, tuple):  # sort_by_label: by the named labels, then all labels (as Prometheus)
        _, names, desc = v.sort
        return sorted(rows, key=lambda i: ([v.labels[i].get(n, "") for n in names], lkey(v.labels[i])),
                      reverse=desc)
    if v.sort and s is not None:
        return sorted(rows, key=lambda i: v.vals[i, s], reverse=v.sort == "desc")
    return sorted(rows, key=lambda i: lkey(v.labels[i]))


def build_result(val, T: np.ndarray, instant: bool, max_points: int = 50_000_000) -> Result:
    if isinstance(val, list):  # raw samples of a top-level range selector
        data = [{"metric": labels, "values": [[fmt_time(t), format_value(float(x))] for t, x in zip(ts, vs)]}
                for labels, ts, vs in sorted(val, key=lambda x: lkey(x[0]))]
        return Result("matrix", data)
    if isinstance(val, String):
        t = fmt_time(T[0])
        return Result("string", [t, val.s], (val.s, t))
    if isinstance(val, Scalar):
        if instant:
            t = fmt_time(T[0])
            return Result("scalar", [t, format_value(float(val.vals[0]))], (float(val.vals[0]), t))
        val = Vec([{}], val.vals[None, :], np.ones((1, len(T)), bool))
    if not isinstance(val, Vec):
        raise BadData("unexpected result type")
    _check_unique(val)
    times = [fmt_time(t) for t in T]
    mats = [(h.labels, h.get(max_points)) for h in val.hists]
    if instant:
        data, series = [], []
        for i in _sorted_rows(val, 0):
            if val.mask[i, 0]:
                x = float(val.vals[i, 0])
                data.append({"metric": val.labels[i], "value": [times[0], format_value(x)]})
                series.append((val.labels[i], x))
        hist_series = []
        for labels, m in sorted(mats, key=lambda x: lkey(x[0])):
            if m.present[0]:
                data.append({"metric": labels, "histogram": [times[0], H.to_json(m, 0, format_value)]})
                hist_series.append((labels, m))
        return Result("vector", data, series=series, hist_series=hist_series)
    npoints = int(val.mask.sum()) + sum(int(m.present.sum()) for _, m in mats)
    if npoints > max_points:
        raise Unprocessable("query result has too many points")
    data = []
    for i in _sorted_rows(val, None):
        idx = np.nonzero(val.mask[i])[0]
        if len(idx):
            row = val.vals[i]
            data.append({"metric": val.labels[i],
                         "values": [[times[s], format_value(float(row[s]))] for s in idx]})
    for labels, m in sorted(mats, key=lambda x: lkey(x[0])):
        idx = np.nonzero(m.present)[0]
        if len(idx):
            data.append({"metric": labels, "histograms": [[times[s], H.to_json(m, s, format_value)] for s in idx]})
    return Result("matrix", data)


def _check_unique(v: Vec) -> None:
    seen: dict[tuple, int] = {}
    for i, l in enumerate(v.labels):
        k = lkey(l)
        if k in seen:
            if (v.mask[seen[k]] & v.mask[i]).any():
                raise Unprocessable("vector cannot contain metrics with the same labelset")
        else:
            seen[k] = i
