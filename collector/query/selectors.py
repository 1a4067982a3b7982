"""Which series a selector names: label matching over the in-memory catalog,
never the database.

Besides the catalog's own series the engine exposes, for every histogram
series ``X``, the counters ``X_count`` and ``X_sum`` (derived from the rows'
count and sum), and ``traces_span_metrics_calls_total`` — the count of
``traces_span_metrics_duration_seconds`` with the same labels.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from collector.model import HISTOGRAM_KINDS, SeriesCatalog

SPAN_DURATION = "traces_span_metrics_duration_seconds"
SPAN_CALLS = "traces_span_metrics_calls_total"

# How an exposed series is read.
FLOAT = "float"   # raw float samples
HIST = "hist"     # histogram rows as a native histogram
COUNT = "count"   # histogram rows' count, as a counter
SUM = "sum"       # histogram rows' sum, as a counter


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


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern:
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error as e:
        from collector.query.errors import BadData
        raise BadData(f"invalid regular expression {pattern!r}: {e}") from None


def matcher_fn(op: str, value: str):
    if op == "=":
        return lambda v: v == value
    if op == "!=":
        return lambda v: v != value
    rx = _regex(value)
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

    def _refresh(self) -> None:
        n = len(self.catalog.by_id)
        if n == self._version:
            return
        with self._lock:
            if n == self._version:
                return
            out: list[Exposed] = []
            for s in self.catalog.all():
                base = tuple(sorted(s.labels))

                def mk(name, access, unit=s.unit, help=s.help):
                    labs = tuple(sorted(base + (("__name__", name),)))
                    return Exposed(name, labs, s.id, access, s.kind, unit, help)

                if s.kind in HISTOGRAM_KINDS:
                    out.append(mk(s.metric, HIST))
                    out.append(mk(s.metric + "_count", COUNT, ""))
                    out.append(mk(s.metric + "_sum", SUM))
                    if s.metric == SPAN_DURATION:
                        out.append(mk(SPAN_CALLS, COUNT, "", "Spans of kind SERVER or CONSUMER."))
                else:
                    out.append(mk(s.metric, FLOAT))
            by_name: dict[str, list[Exposed]] = {}
            for e in out:
                by_name.setdefault(e.name, []).append(e)
            self._all, self._by_name, self._version = out, by_name, n

    def all(self) -> list[Exposed]:
        self._refresh()
        return self._all

    def names(self) -> list[str]:
        self._refresh()
        return sorted(self._by_name)

    def match(self, matcher_sets: list[list[tuple[str, str, str]]]) -> list[Exposed]:
        """Series matching any of the sets of (label, op, value) matchers."""
        self._refresh()
        seen: dict[tuple, Exposed] = {}
        for ms in matcher_sets:
            cands = self._all
            for name, op, value in ms:
                if name == "__name__" and op == "=":
                    cands = self._by_name.get(value, [])
                    break
            fns = [(name, matcher_fn(op, value)) for name, op, value in ms]
            for e in cands:
                d = dict(e.labels)
                if all(fn(d.get(name, "")) for name, fn in fns):
                    seen[(e.labels)] = e
        return sorted(seen.values(), key=lambda e: e.labels)


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
