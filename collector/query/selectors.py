"""Which series a selector names: label matching over the in-memory catalog,
never the database.

Besides the catalog's own series the engine exposes, for every histogram
series ``X``, the counters ``X_count`` and ``X_sum`` (derived from the rows'
count and sum), and ``traces_span_metrics_calls_total`` — the count of
``traces_span_metrics_duration_seconds`` with the same labels.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass

import numpy as np

from collector.model import HISTOGRAM_KINDS, KIND_NATIVE, SeriesCatalog
from collector.query.regex import compile_anchored

SPAN_DURATION = "traces_span_metrics_duration_seconds"
SPAN_CALLS = "traces_span_metrics_calls_total"

# How an exposed series is read.
FLOAT = "float"   # raw float samples
HIST = "hist"     # histogram rows as a native histogram
COUNT = "count"   # histogram rows' count, as a counter
SUM = "sum"       # histogram rows' sum, as a counter
NATIVE = "native"  # samples that are native histograms (or floats) at their own times (exphist.NH)


@dataclass(frozen=True)
class Exposed:
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted, with __name__
    sid: int
    access: str
    kind: str        # the catalog kind of the underlying series
    unit: str = ""
    help: str = ""

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def matcher_fn(op: str, value: str):
    if op == "=":
        return lambda v: v == value
    if op == "!=":
        return lambda v: v != value
    rx = compile_anchored(value)
    if op == "=~":
        return lambda v: rx.fullmatch(v) is not None
    return lambda v: rx.fullmatch(v) is None


class SeriesIndex:
    """The exposed series, rebuilt when the catalog grows."""

    def __init__(self, catalog: SeriesCatalog):
        self.catalog = catalog
        self._lock = threading.Lock()
        self._version = -1
        self._all: list[Exposed] = []
        self._by_name: dict[str, list[Exposed]] = {}
        self._postings: dict[str, dict[str, set[int]]] = {}   # label -> value -> positions in _all
        self._has: dict[str, set[int]] = {}                   # label -> positions having it
        self._every = range(0)
        self._hist_ids: np.ndarray | None = None
        self._rank: np.ndarray | None = None    # position -> place in label order (sorted once per version)

    def _refresh(self) -> None:
        # The catalog only grows (recorded series and ALERTS add to it while rules
        # run), so new series are appended to the index, not rebuilt from scratch.
        n = len(self.catalog.by_id)
        if n == self._version:
            return
        with self._lock:
            if n == self._version:
                return
            new = list(itertools.islice(self.catalog.by_id.values(), self._version if self._version > 0 else 0, None))
            if self._version < 0 or len(new) != n - max(self._version, 0):
                new, self._all, self._by_name, self._postings, self._has = self.catalog.all(), [], {}, {}, {}
            out = self._all
            for s in new:
                base = tuple(sorted(s.labels))

                def mk(name, access, unit=s.unit, help=s.help):
                    labs = tuple(sorted(base + (("__name__", name),)))
                    return Exposed(name, labs, s.id, access, s.kind, unit, help)

                if s.kind in HISTOGRAM_KINDS:
                    add = [mk(s.metric, HIST), mk(s.metric + "_count", COUNT, ""), mk(s.metric + "_sum", SUM)]
                    if s.metric == SPAN_DURATION:
                        add.append(mk(SPAN_CALLS, COUNT, "", "Spans of kind SERVER or CONSUMER."))
                elif s.kind == KIND_NATIVE:
                    add = [mk(s.metric, NATIVE)]
                else:
                    add = [mk(s.metric, FLOAT)]
                for e in add:
                    i = len(out)
                    out.append(e)
                    self._by_name.setdefault(e.name, []).append(e)
                    for k, v in e.labels:
                        self._postings.setdefault(k, {}).setdefault(v, set()).add(i)
                        self._has.setdefault(k, set()).add(i)
            self._every = range(len(out))
            self._hist_ids = None
            self._rank = None
            self._version = n

    def hist_ids(self) -> np.ndarray:
        """Ids of every histogram-backed series (sorted)."""
        self._refresh()
        with self._lock:
            if self._hist_ids is None:
                self._hist_ids = np.array(sorted({e.sid for e in self._all if e.access not in (FLOAT, NATIVE)}),
                                          np.uint64)
            return self._hist_ids

    def all(self) -> list[Exposed]:
        self._refresh()
        return self._all

    def names(self) -> list[str]:
        self._refresh()
        return sorted(self._by_name)

    def match(self, matcher_sets: list[list[tuple[str, str, str]]]) -> list[Exposed]:
        """Series matching any of the sets of (label, op, value) matchers.

        Through an inverted index: a matcher is tested once per distinct value
        of its label, not once per series."""
        self._refresh()
        with self._lock:   # the index is appended to in place
            seen: set[int] = set()
            every, all_ = self._every, self._all
            for ms in matcher_sets:
                cands = None
                for name, op, value in sorted(ms, key=lambda m: m[1] != "="):   # selective ones first
                    fn = matcher_fn(op, value)
                    vals = self._postings.get(name, {})
                    if op == "=" and value != "":
                        m = vals.get(value, ())
                        cands = set(m) if cands is None else cands.intersection(m)
                    elif cands is not None and len(cands) <= len(vals):
                        # Few candidates left: test them directly.
                        cands = {i for i in cands if fn(_label(all_[i].labels, name))}
                    else:
                        hit = [ps for v, ps in vals.items() if fn(v)]
                        m = set().union(*hit)
                        if fn(""):              # a missing label counts as ""
                            m |= set(every).difference(self._has.get(name, ()))
                        cands = m if cands is None else cands & m
                    if not cands:
                        break
                seen |= set(every) if cands is None else cands
            if len(seen) < 256:
                by_labels = {all_[i].labels: all_[i] for i in sorted(seen)}
                return [by_labels[k] for k in sorted(by_labels)]
            # Many series: order them by a rank computed once per index version instead
            # of comparing label tuples per query (100 000 series in a count()).
            if self._rank is None:
                order = sorted(range(len(all_)), key=lambda i: all_[i].labels)
                self._rank = np.empty(len(all_), np.int64)
                self._rank[order] = np.arange(len(all_))
            pos = np.fromiter(seen, np.int64, len(seen))
            pos = pos[np.argsort(self._rank[pos], kind="stable")]
            out = [all_[i] for i in pos.tolist()]
        # equal label sets are one series (the last wins, as in the dictionary above)
        last = len(out) - 1
        return [e for k, e in enumerate(out) if k == last or e.labels != out[k + 1].labels]


def _label(labels: tuple[tuple[str, str], ...], name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


_OPS = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}


def selector_matchers(vs) -> list[list[tuple[str, str, str]]]:
    """The matcher sets of a promql_parser VectorSelector (``or`` gives several)."""
    base = [(m.name, _OPS[str(m.op)], m.value) for m in vs.matchers.matchers]
    if vs.name:
        base.append(("__name__", "=", vs.name))
    ors = vs.matchers.or_matchers
    if ors:
        sets = []
        for group in ors:
            s = [(m.name, _OPS[str(m.op)], m.value) for m in group]
            if vs.name:
                s.append(("__name__", "=", vs.name))
            sets.append(s)
        return sets
    return [base]


def parse_match_params(params: list[str]) -> list[list[tuple[str, str, str]]]:
    """``match[]`` API parameters → matcher sets."""
    import promql_parser

    from collector.query.errors import BadData

    sets: list = []
    for p in params:
        try:
            node = promql_parser.parse(p)
        except ValueError as e:
            raise BadData(f"invalid match[] {p!r}: {e}") from None
        if type(node).__name__ != "VectorSelector":
            raise BadData(f"invalid match[] {p!r}: not a series selector")
        sets.extend(selector_matchers(node))
    return sets
