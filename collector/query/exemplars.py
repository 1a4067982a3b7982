"""``/api/v1/query_exemplars``: the exemplars of the series an expression selects,
as Prometheus answers it (its ``ExtractSelectors``: every vector selector of the
expression, whatever functions surround it).

* A histogram series (``traces_span_metrics_duration_seconds{…}``) has its own
  exemplars, as Prometheus keeps them for native histograms.
* Its classic view ``X_bucket{le}`` (collector/query/classic.py) has each of them
  under the smallest ``le`` at or above its value, as a classic histogram's
  ``_bucket`` series carry them in Prometheus.
* Float series have the exemplars remote write brought with them.
* ``_count``, ``_sum`` and ``calls_total`` have none (as in Prometheus).

Each exemplar's labels are ``trace_id`` and ``span_id`` in lowercase hex (the form
the OpenTelemetry→Prometheus translation writes, which Grafana's exemplar links read).

A long range is thinned on read as the store keeps them, only coarser: per series,
per 1/``MAX_TIME_BUCKETS`` of the range (never finer than a slot) and per octave,
the slowest — so a week of exemplars is a few thousand points per series, and the
slowest request of any period is always there.
"""
from __future__ import annotations

import math

import numpy as np

from collector.aggregate.exemplars import hex_ids
from collector.model import KIND_CUSTOM, NS, ExemplarRows
from collector.query import classic
from collector.query import loader as L
from collector.query.selectors import COUNT, FLOAT, HIST, SUM, selector_matchers
from collector.query.seriesnotation import format_value

MAX_TIME_BUCKETS = 250
SLOT_NS = 10 * NS   # read a slot earlier than the range: a slot's exemplars lie within it


def vector_selectors(node) -> list:
    """Every VectorSelector of a parsed expression, in order."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        kind = type(n).__name__
        if kind == "VectorSelector":
            out.append(n)
        elif kind == "MatrixSelector":
            stack.append(n.vector_selector)
        elif kind == "Call":
            stack.extend(reversed(list(n.args)))
        elif kind == "BinaryExpr":
            stack.extend([n.rhs, n.lhs])
        elif kind == "AggregateExpr":
            stack.extend(x for x in (n.expr, n.param) if x is not None)
        elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
            stack.append(n.expr)
    return out


def thin(rows: ExemplarRows, start_ns: int, end_ns: int, slot_ns: int = SLOT_NS) -> ExemplarRows:
    """Per series, time bucket and octave, the slowest (the first on a tie)."""
    width = max(slot_ns, (end_ns - start_ns) // MAX_TIME_BUCKETS)
    if len(rows) < 2 or width <= slot_ns:
        return rows
    tb = (rows.ts - start_ns) // width
    order = np.lexsort((-rows.value, rows.grp, tb, rows.series_id))
    s, t, g = rows.series_id[order], tb[order], rows.grp[order]
    first = np.ones(len(order), bool)
    first[1:] = (s[1:] != s[:-1]) | (t[1:] != t[:-1]) | (g[1:] != g[:-1])
    return rows.take(np.sort(order[first]))


def _exemplar_json(rows: ExemplarRows, pick: np.ndarray) -> list[dict]:
    sub = rows.take(pick[np.argsort(rows.at[pick], kind="stable")])
    traces, spans = hex_ids(sub)
    # a span id of zeros: the sender gave none (metric exemplars may lack one)
    return [{"labels": {"trace_id": t, "span_id": s} if s.strip("0") else {"trace_id": t},
             "value": format_value(float(v)), "timestamp": round(int(a) / NS, 3)}
            for t, s, v, a in zip(traces, spans, sub.value.tolist(), sub.at.tolist())]


def query_exemplars(engine, node, start_s: float, end_s: float) -> list[dict]:
    """The API's ``data``: [{"seriesLabels": {...}, "exemplars": [...]}], series sorted by labels."""
    start_ns, end_ns = int(round(start_s * 1000)) * 1_000_000, int(round(end_s * 1000)) * 1_000_000
    source = engine.source
    read = getattr(source, "read_exemplars", None)
    if read is None or end_ns < start_ns:
        return []
    before = getattr(source, "before_query", None)
    if before is not None:   # receiver workers ship what they hold (read your writes)
        before()
    sel: dict = {}
    for vs in vector_selectors(node):
        for e in engine.classic.select(engine.index, selector_matchers(vs)):
            if e.access in (COUNT, SUM):
                continue
            sel[(e.labels, e.access)] = e
    entries = list(sel.values())
    custom_bounds: dict[int, list[float]] = {}   # explicit-bucket series: every bound their rows have
    if any(e.access == classic.FAMILY for e in entries):   # explicit-bucket _bucket: bounds from the rows
        hrows, _ = L.read_hist(source, [e for e in entries if e.access == classic.FAMILY], start_ns - SLOT_NS,
                               end_ns + 1)
        for sid, r in hrows.items():
            custom_bounds[sid] = sorted({b for bs in (r.bounds or ()) if bs is not None for b in bs} | {math.inf})
        entries = classic.ClassicBuckets.expand(entries, hrows)
    if not entries:
        return []
    ids = np.array(sorted({e.sid for e in entries}), np.uint64)
    rows = read(ids, start_ns - SLOT_NS, end_ns + 1)
    rows = rows.take(np.nonzero((rows.at >= start_ns) & (rows.at <= end_ns))[0]) if len(rows) else rows
    rows = thin(rows, start_ns, end_ns)
    if not len(rows):
        return []
    by_sid: dict[int, np.ndarray] = {}
    order = np.argsort(rows.series_id, kind="stable")
    sids, first = np.unique(rows.series_id[order], return_index=True)
    for i, sid in enumerate(sids.tolist()):
        by_sid[sid] = order[first[i]:first[i + 1] if i + 1 < len(first) else len(order)]
    out = []
    for e in sorted(entries, key=lambda e: e.labels):
        pick = by_sid.get(e.sid)
        if pick is None:
            continue
        if classic.is_bucket(e.access):
            # the smallest bound at or above its value, whichever les the selector chose
            le = classic.le_of(e.access)
            bounds = custom_bounds.get(e.sid, []) if e.kind == KIND_CUSTOM else engine.classic.bounds
            below = max((b for b in bounds if b < le), default=-math.inf)
            v = rows.value[pick]
            pick = pick[(v > below) & (v <= le)]
            if not len(pick):
                continue
        elif e.access not in (HIST, FLOAT):
            continue
        out.append({"seriesLabels": e.label_dict(), "exemplars": _exemplar_json(rows, pick)})
    return out
