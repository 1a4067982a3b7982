"""PromQL's ``info(v, [selector])``: add the data labels of info series (by
default ``target_info``) that share the identifying labels ``job`` and
``instance`` with each series of v, as Prometheus 3 does.

- The selector's ``__name__`` matchers choose the info metrics (default
  ``target_info``); its other matchers filter info series and name the only data
  labels that are added.
- A label the series already has is kept; info metrics themselves pass unchanged.
- With a data-label matcher that does not match the empty string, a sample with
  no matching info series is dropped; otherwise it passes unchanged.
- Two series of one info metric matching at a step: the newer sample wins;
  different info metrics disagreeing on a label is an error.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import promql_parser

from collector.query.errors import BadData, Unprocessable
from collector.query.selectors import matcher_fn, selector_matchers
from collector.query.values import Vec, lkey

IDENTIFYING = ("instance", "job")
_OP = {"=": promql_parser.MatchOp.Equal, "!=": promql_parser.MatchOp.NotEqual,
       "=~": promql_parser.MatchOp.Re, "!~": promql_parser.MatchOp.NotRe}


def _node(matchers: list[tuple[str, str, str]], like) -> SimpleNamespace:
    """A vector selector (duck-typed as promql_parser's) for these matchers, at
    the base selector's @ and offset."""
    ms = [SimpleNamespace(name=n, op=_OP[o], value=v) for n, o, v in matchers]
    return SimpleNamespace(name=None, matchers=SimpleNamespace(matchers=ms, or_matchers=[]),
                           at=getattr(like, "at", None), offset=getattr(like, "offset", None))


def info(ev, args, T) -> Vec:
    from collector.query.calls import unparen

    base = ev.eval(args[0], T)
    if not isinstance(base, Vec):
        raise BadData("expected an instant vector as the first argument of info()")
    sel = []
    if len(args) > 1:
        node = unparen(args[1])
        if type(node).__name__ != "VectorSelector":
            raise BadData("expected a label selector as the second argument of info()")
        sets = selector_matchers(node)
        if len(sets) != 1:
            raise BadData("info() does not take 'or' in its label selector")
        sel = sets[0]
    names = [m for m in sel if m[0] == "__name__"] or [("__name__", "=", "target_info")]
    data_ms = [m for m in sel if m[0] != "__name__"]
    wanted = {m[0] for m in data_ms}
    must_match = any(not matcher_fn(op, v)("") for _, op, v in data_ms)
    infos = ev._VectorSelector(_node(names + data_ms, unparen(args[0]) if type(unparen(args[0])).__name__ == "VectorSelector"
                          else None), T)
    if infos.hists:
        raise BadData("info series must be floats; the info selector matches histogram series")
    name_fns = [matcher_fn(op, v) for _, op, v in names]

    def is_info(labels: dict) -> bool:
        n = labels.get("__name__", "")
        return all(f(n) for f in name_fns)

    S = len(T)
    # Per identifying key, per step: the data labels to add (None: no info series there).
    by_key: dict[tuple, list[int]] = {}
    for j, l in enumerate(infos.labels):
        by_key.setdefault(tuple(l.get(k, "") for k in IDENTIFYING), []).append(j)
    ts = infos.ts if infos.ts is not None else np.zeros(infos.vals.shape)
    cache: dict[tuple, list] = {}

    def additions(key: tuple) -> list:
        got = cache.get(key)
        if got is not None:
            return got
        rows = by_key.get(key, [])
        out = []
        for s in range(S):
            present = [j for j in rows if infos.mask[j, s]]
            if not present:
                out.append(None)
                continue
            per_metric: dict[str, tuple[int, dict]] = {}
            for j in present:
                lab = infos.labels[j]
                data = {k: v for k, v in lab.items() if k not in IDENTIFYING and k != "__name__"
                        and (not wanted or k in wanted)}
                metric = lab.get("__name__", "")
                if metric not in per_metric or ts[j, s] > per_metric[metric][0]:
                    per_metric[metric] = (ts[j, s], data)
            merged: dict[str, str] = {}
            for _, data in per_metric.values():
                for k, v in data.items():
                    if k in merged and merged[k] != v:
                        raise Unprocessable(f"info(): conflicting label {k!r}: {merged[k]!r} and {v!r} from "
                                            "different info metrics")
                    merged[k] = v
            out.append(merged)
        cache[key] = out
        return out

    rows_out: dict[tuple, list] = {}

    def put(labels: dict, i: int, steps: np.ndarray) -> None:
        k = lkey(labels)
        if k not in rows_out:
            rows_out[k] = [labels, np.zeros(S), np.zeros(S, bool)]
        r = rows_out[k]
        if (r[2] & steps).any():
            raise Unprocessable("vector cannot contain metrics with the same labelset")
        r[1] = np.where(steps, base.vals[i], r[1])
        r[2] |= steps

    for i, l in enumerate(base.labels):
        if is_info(l):
            put(dict(l), i, base.mask[i].copy())
            continue
        adds = additions(tuple(l.get(k, "") for k in IDENTIFYING))
        groups: dict[tuple, list[int]] = {}
        for s in np.nonzero(base.mask[i])[0]:
            a = adds[s]
            if a is None:
                if must_match:
                    continue
                a = {}
            extra = {k: v for k, v in a.items() if k not in l}
            groups.setdefault(tuple(sorted(extra.items())), []).append(int(s))
        for extra, steps in groups.items():
            m = np.zeros(S, bool)
            m[steps] = True
            put({**l, **dict(extra)}, i, m)
    vals = list(rows_out.values())
    out = Vec.of([x[0] for x in vals], [x[1] for x in vals], [x[2] for x in vals], S)
    out.hists = list(base.hists)
    return out
