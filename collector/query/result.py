"""Query results in the Prometheus API's JSON shapes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from operator import itemgetter

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

    def json_pieces(self):
        """The JSON text of ``to_json()``, in pieces (one per series at most): the
        API joins them, so no single call holds the interpreter lock for the
        whole answer."""
        yield '{"resultType":' + _dumps(self.type) + ',"result":'
        data = self.data
        if isinstance(data, list) and data and isinstance(data[0], dict):
            yield "["
            for i, item in enumerate(data):
                yield ("," if i else "") + _dumps(item)
            yield "]}"
        else:
            yield _dumps(data) + "}"

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


class _Matrix(Result):
    """A range query's float series, rendered in bulk: values are formatted per
    series with one ``repr`` pass (the digits Go's FormatFloat gives), and the
    JSON text of a series is built as one string; ``data`` (the list-of-lists
    form) is built only when something asks for it."""

    def __init__(self, rows: list[tuple[dict, np.ndarray, np.ndarray]], hist_items: list, times: list):
        super().__init__("matrix", None)
        self._rows = rows             # (labels, step indexes, values)
        self._hist_items = hist_items  # already in the API's shape
        self._times = times           # formatted step times

    @property
    def data(self):
        if self._data is None:
            out = []
            for labels, idx, vals in self._rows:
                t = self._times
                out.append({"metric": labels, "values": [[t[s], v] for s, v in zip(idx.tolist(), format_values(vals))]})
            self._data = out + self._hist_items
        return self._data

    @data.setter
    def data(self, value):
        self._data = value

    def json_pieces(self):
        yield '{"resultType":"matrix","result":['
        first = True
        tstr = [json.dumps(t) for t in self._times]
        for labels, idx, vals in self._rows:
            ts = itemgetter(*idx.tolist())(tstr) if len(idx) > 1 else (tstr[int(idx[0])],)
            raw = _reprs(vals)
            if raw is None:
                body = ",".join(map('[%s,"%s"]'.__mod__, zip(ts, format_values(vals))))
            else:   # ``x.0`` → ``x`` on the whole text: '.0"]' only ends a value
                body = ",".join(map('[%s,"%s"]'.__mod__, zip(ts, raw))).replace('.0"]', '"]')
            yield ("" if first else ",") + '{"metric":' + _dumps(labels) + ',"values":[' + body + "]}"
            first = False
        for item in self._hist_items:
            yield ("" if first else ",") + _dumps(item)
            first = False
        yield "]}"


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def format_values(vals: np.ndarray) -> list[str]:
    """``format_value`` of every element, in bulk: Python's ``repr`` gives the
    shortest digits that round-trip, as Go's FormatFloat(v, 'f', -1) does; only
    its exponent forms, ``x.0`` and the non-finite spellings differ, and are fixed."""
    out = _reprs(vals)
    if out is None:
        return [format_value(v) for v in vals.tolist()]
    return [x[:-2] if x.endswith(".0") else x for x in out]


def _reprs(vals: np.ndarray) -> list[str] | None:
    """``repr`` of every element, or None where one needs ``format_value`` (not finite, exponent form)."""
    if not np.isfinite(vals).all():
        return None
    out = list(map(repr, vals.tolist()))
    return None if "e" in " ".join(out) else out


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
    rows = []
    for i in _sorted_rows(val, None):
        idx = np.nonzero(val.mask[i])[0]
        if len(idx):
            rows.append((val.labels[i], idx, val.vals[i][idx].astype(np.float64)))
    hist_items = []
    for labels, m in sorted(mats, key=lambda x: lkey(x[0])):
        idx = np.nonzero(m.present)[0]
        if len(idx):
            hist_items.append({"metric": labels, "histograms": [[times[s], H.to_json(m, s, format_value)] for s in idx]})
    return _Matrix(rows, hist_items, times)


def _check_unique(v: Vec) -> None:
    seen: dict[tuple, int] = {}
    for i, l in enumerate(v.labels):
        k = lkey(l)
        if k in seen:
            if (v.mask[seen[k]] & v.mask[i]).any():
                raise Unprocessable("vector cannot contain metrics with the same labelset")
        else:
            seen[k] = i
