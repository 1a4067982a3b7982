"""Values during evaluation. Every value covers all steps of the query at once:
an instant vector is a (series × steps) matrix of floats with a presence mask,
plus histogram series kept lazy (see hist.py)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from collector.query.hist import HSeries
from collector.query.loader import DeltaData, FloatData


def lkey(labels: dict[str, str]) -> tuple:
    return tuple(sorted(labels.items()))


def drop_name(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "__name__"}


@dataclass
class Scalar:
    vals: np.ndarray  # (S,)


@dataclass
class String:
    s: str


@dataclass
class Vec:
    labels: list[dict[str, str]]
    vals: np.ndarray   # (n, S)
    mask: np.ndarray   # (n, S) bool
    hists: list[HSeries] = field(default_factory=list)
    ts: np.ndarray | None = None  # sample timestamps (ns), for timestamp() of a selector
    sort: str | tuple | None = None  # "asc" / "desc" (sort, sort_desc); ("label", names, desc) (sort_by_label)

    @staticmethod
    def empty(S: int) -> "Vec":
        return Vec([], np.zeros((0, S)), np.zeros((0, S), bool))

    @staticmethod
    def of(labels: list[dict], vals: list[np.ndarray], masks: list[np.ndarray], S: int) -> "Vec":
        if not labels:
            return Vec.empty(S)
        return Vec(labels, np.vstack(vals).reshape(len(labels), S), np.vstack(masks).reshape(len(labels), S))

    def floats_only(self, what: str, strict: bool = False) -> "Vec":
        """Histogram samples take no part in ``what`` (Prometheus ignores them in
        float functions); ``strict`` refuses them instead."""
        if self.hists and strict:
            from collector.query.errors import BadData
            raise BadData(f"{what} is not supported for histogram series")
        return self


@dataclass
class RangeArg:
    """A range vector handed to a function: per series data and the windows."""

    floats: list[tuple[dict, FloatData]]
    deltas: list[tuple[dict, DeltaData]]
    hists: list[HSeries]
    T: np.ndarray
    w_ns: int
    matchers: list = field(default_factory=list)
    hsamples: list = field(default_factory=list)  # subqueries: (labels, sample times, HMat of the samples)
    # rate/increase of histogram counts/sums, every series at once: (labels, values (n, S), present (n, S))
    bulk: tuple | None = None
