"""Helpers for the Prometheus 3 family tests: load series in promtool's notation
(the same ``load`` block Prometheus's own tests use) and evaluate."""
from __future__ import annotations

import math

from collector.query.engine import Engine
from collector.query.seriesnotation import load


def _split(line: str) -> tuple[str, str]:
    """``name{labels} values`` → (series, values); the label set ends at the first
    ``}`` outside quotes (values may hold ``{{...}}`` histograms)."""
    line = line.strip()
    first = line.split(" ", 1)[0]
    if "{" not in first and not line.startswith("{"):
        i = line.index(" ")
        return line[:i], line[i:].strip()
    quoted = False
    for i, c in enumerate(line):
        if c == '"' and (i == 0 or line[i - 1] != "\\"):
            quoted = not quoted
        elif c == "}" and not quoted:
            return line[:i + 1].strip(), line[i + 1:].strip()
    raise ValueError(f"no end of the label set in {line!r}")


def engine(block: str, interval_s: float = 300) -> Engine:
    series = [_split(x) for x in block.strip().splitlines() if x.strip()]
    return Engine(load(series, interval_s), clock=lambda: 1e12)


def instant(e: Engine, expr: str, t: float) -> dict:
    """{frozenset(labels): value} of an instant query (a scalar under frozenset())."""
    r = e.instant(expr, t)
    if r.type == "scalar":
        return {frozenset(): float(r.value[0])}
    return {frozenset(d["metric"].items()): float(d["value"][1]) for d in r.data}


def same(got: dict, want: dict) -> bool:
    if set(got) != set(want):
        return False
    for k, v in want.items():
        g = got[k]
        if math.isnan(v) or math.isnan(g):
            if not (math.isnan(v) and math.isnan(g)):
                return False
        elif not (g == v or math.isclose(g, v, rel_tol=1e-12, abs_tol=1e-300)):
            return False
    return True


def L(**kw) -> frozenset:
    return frozenset(kw.items())
