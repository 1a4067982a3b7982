"""Latency rules of one group that differ only in ``match`` share their queries.

``histogram_quantile(q, sum by (B) (rate(m{M}[w])))`` with every label of the
equality matchers ``M`` in ``B`` is, group for group, the part of the same query
without ``M`` whose labels equal ``M``: each output group holds the same series
either way. So a group of such rules (a rule per service and route, say) runs two
queries in all instead of two per rule; each rule takes its part by a dictionary
lookup. Anything else, or an error in the shared query, leaves a rule to query on
its own.
"""
from __future__ import annotations

import json

from alerting.rules.compile import latency_exprs
from alerting.rules.spec import LatencySpec


def shared_answers(rules, query, t: float) -> dict[str, list]:
    """expression -> its answer at ``t``, for the latency rules that can share."""
    shapes: dict[tuple, list] = {}
    for r in rules:
        check = getattr(r, "latency", None)
        lat = getattr(getattr(r, "source", None), "latency", None)
        if check is None or lat is None or not lat.match or not set(lat.match) <= set(lat.by):
            continue
        shapes.setdefault((lat.metric, tuple(lat.by), lat.window, lat.quantile), []).append((check, lat))
    out: dict[str, list] = {}
    for (metric, by, window, quantile), members in shapes.items():
        if len({check.value_expr for check, _ in members}) < 2:
            continue   # nothing to share
        value_all, count_all = shared_exprs(metric, by, window, quantile, [lat.match for _, lat in members])
        try:
            values = query(value_all, t)
            counts = query(count_all, t) if any(check.min_count for check, _ in members) else None
        except Exception:   # each rule queries alone and reports its own error
            continue
        index: dict[tuple, tuple[dict, dict]] = {}
        for check, lat in members:
            keys = tuple(sorted(lat.match))
            if keys not in index:
                index[keys] = (_by_values(values, keys), _by_values(counts or [], keys))
            vals, cnts = index[keys]
            want = tuple(lat.match[k] for k in keys)
            out[check.value_expr] = list(vals.get(want, ()))
            if counts is not None:
                out[check.count_expr] = list(cnts.get(want, ()))
    return out


def shared_exprs(metric: str, by: tuple, window: float, quantile: float, matches: list[dict]) -> tuple[str, str]:
    """The two queries of a shape, over the union of the rules' series only
    (``m{a="1", b="2" or a="1", b="3"}``)."""
    sets = sorted({tuple(sorted(m.items())) for m in matches})
    union = " or ".join(", ".join(f"{k}={json.dumps(v)}" for k, v in s) for s in sets)
    value, count = latency_exprs(LatencySpec(above=0.0, metric=metric, by=by, window=window, quantile=quantile))
    return (value.replace(f"rate({metric}[", f"rate({metric}{{{union}}}[", 1),
            count.replace(f"increase({metric}_count[", f"increase({metric}_count{{{union}}}[", 1))


def _by_values(answer: list, keys: tuple) -> dict[tuple, list]:
    out: dict[tuple, list] = {}
    for labels, value in answer:
        out.setdefault(tuple(labels.get(k, "") for k in keys), []).append((labels, value))
    return out
