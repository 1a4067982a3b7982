"""promtool's series notation, so tests and ``tocsin rules test`` can load data:

    series: 'http_requests_total{job="api"}'   values: '0+10x5 _ stale 3 1x2 _x2'

``a+bxn`` expands to the n+1 values a, a+b, ... a+n*b (``a-bxn`` likewise), ``axn``
to n+1 copies of a, ``_`` is a missing sample, ``_xn`` n missing samples and
``stale`` a staleness marker. Samples are ``interval`` apart from ``start``.

Native histograms use Prometheus's notation (see exphist.parse):
``{{schema:0 sum:5 count:4 buckets:[1 2 1]}}``, ``{{...}}xn`` (n+1 copies),
``{{a}}+{{b}}xn`` (a, a+b, ..., a+n·b) and ``{{a}}-{{b}}xn``. A series with a
histogram sample is kept exactly (kind ``native``, collector.query.nativesel).
"""
from __future__ import annotations

import math
import re

import numpy as np
import promql_parser

from collector.model import (KIND_COUNTER, KIND_GAUGE, KIND_NATIVE, NS, SampleRows, Series, SeriesCatalog,
                             make_labels, series_id)
from collector.query.memsource import MemorySource
from collector.query.stale import STALE_NAN

MISSING = None
_NUM = r"[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|Inf|inf|NaN|nan|0x[0-9a-fA-F]+)"
_EXPAND = re.compile(rf"^({_NUM})(?:([-+])({_NUM}))?x(\d+)$")
_BLANKS = re.compile(r"^_x(\d+)$")


class NotationError(ValueError):
    pass


def _num(s: str) -> float:
    low = s.lower().lstrip("+")
    if low in ("inf", "-inf", "nan"):
        return float(low)
    if low.startswith(("0x", "-0x")):
        return float(int(low, 16))
    return float(s)


def _tokens(text: str) -> list[str]:
    """Whitespace-separated tokens, a ``{{...}}`` (with its ``+{{...}}xn`` or
    ``xn`` expansion) being one token whatever spaces it holds."""
    out, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text.startswith("{{", i):
            j = text.find("}}", i)
            if j < 0:
                raise NotationError(f"unclosed '{{{{' in series values {text!r}")
            j += 2
            k = j
            while k < n and text[k] == " ":
                k += 1
            if k < n and text[k] in "+-":
                m = k + 1
                while m < n and text[m] == " ":
                    m += 1
                if text.startswith("{{", m):
                    e = text.find("}}", m)
                    if e < 0:
                        raise NotationError(f"unclosed '{{{{' in series values {text!r}")
                    j = e + 2
            while j < n and not text[j].isspace():
                j += 1
            out.append(text[i:j])
            i = j
            continue
        j = i
        while j < n and not text[j].isspace():
            j += 1
        out.append(text[i:j])
        i = j
    return out


_HEXPAND = re.compile(r"^(\{\{.*?\}\})\s*(?:([-+])\s*(\{\{.*?\}\}))?(?:x(\d+))?$", re.S)


def _histograms(tok: str) -> list:
    from collector.query import exphist

    m = _HEXPAND.match(tok)
    if not m:
        raise NotationError(f"bad native histogram value {tok!r}: expected {{{{...}}}}, {{{{...}}}}xN or "
                            f"{{{{...}}}}+{{{{...}}}}xN")
    try:
        base = exphist.parse(m.group(1))
        inc = exphist.parse(m.group(3)) if m.group(3) else None
    except exphist.NotationError as e:
        raise NotationError(str(e)) from None
    times = int(m.group(4)) if m.group(4) is not None else None
    if inc is None:
        return [base] * ((times or 0) + 1)
    if times is None:
        raise NotationError(f"bad native histogram value {tok!r}: {{{{a}}}}{m.group(2)}{{{{b}}}} needs xN")
    out, cur = [base], base
    for _ in range(times):
        if cur.schema > inc.schema:
            raise NotationError(f"bad native histogram value {tok!r}: error combining histograms: cannot merge "
                                f"from schema {inc.schema} to {cur.schema}")
        try:
            cur = cur.add(inc) if m.group(2) == "+" else cur.sub(inc)
        except exphist.Incompatible as e:
            raise NotationError(f"bad native histogram value {tok!r}: {e}") from None
        out.append(cur)
    return out


def parse_values(text: str) -> list:
    """The values of one series; ``None`` where a sample is missing; native
    histograms as exphist.NH."""
    out: list = []
    for tok in _tokens(text):
        if tok == "_":
            out.append(MISSING)
        elif tok == "stale":
            out.append(STALE_NAN)
        elif m := _BLANKS.match(tok):
            out.extend([MISSING] * int(m.group(1)))
        elif m := _EXPAND.match(tok):
            a, sign, b, n = m.group(1), m.group(2), m.group(3), int(m.group(4))
            a_v = _num(a)
            step = 0.0 if b is None else _num(b) * (-1 if sign == "-" else 1)
            out.extend(a_v + i * step for i in range(n + 1))
        elif tok.startswith("{{"):
            out.extend(_histograms(tok))
        else:
            try:
                out.append(_num(tok))
            except ValueError:
                raise NotationError(f"bad value {tok!r} in series values {text!r}") from None
    return out


def parse_series(text: str) -> tuple[str, dict[str, str]]:
    """``metric{a="b"}`` → ("metric", {"a": "b"})."""
    try:
        node = promql_parser.parse(text)
    except ValueError as e:
        raise NotationError(f"bad series {text!r}: {e}") from None
    if type(node).__name__ != "VectorSelector":
        raise NotationError(f"bad series {text!r}: not a series selector")
    name = node.name or ""
    labels: dict[str, str] = {}
    for m in node.matchers.matchers:
        if str(m.op) != "MatchOp.Equal":
            raise NotationError(f"bad series {text!r}: only = matchers are allowed")
        if m.name == "__name__":
            name = m.value
        else:
            labels[m.name] = m.value
    if not name:
        raise NotationError(f"bad series {text!r}: no metric name")
    return name, labels


def load(series: list[tuple[str, str]], interval_s: float, start_s: float = 0.0) -> MemorySource:
    """A MemorySource holding float series given in the notation."""
    catalog = SeriesCatalog()
    sids, tss, vals = [], [], []
    native: dict = {}
    step_ns = int(round(interval_s * NS))
    start_ns = int(round(start_s * NS))
    for sel, values in series:
        name, labels = parse_series(sel)
        lab = make_labels(labels)
        sid = series_id(name, lab)
        parsed = parse_values(values)
        if any(not isinstance(v, float) and v is not MISSING for v in parsed):
            catalog.add(Series(sid, name, lab, KIND_NATIVE))
            from collector.query.exphist import stored_hints

            keep = [(start_ns + i * step_ns, v) for i, v in enumerate(parsed) if v is not MISSING]
            native[sid] = (np.array([t for t, _ in keep], np.int64), stored_hints([v for _, v in keep]))
            continue
        kind = KIND_COUNTER if name.endswith("_total") else KIND_GAUGE
        catalog.add(Series(sid, name, lab, kind))
        for i, v in enumerate(parsed):
            if v is MISSING:
                continue
            sids.append(sid)
            tss.append(start_ns + i * step_ns)
            vals.append(v)
    rows = SampleRows(np.array(sids, np.uint64), np.array(tss, np.int64), np.array(vals, np.float64))
    return MemorySource(catalog, samples=rows, native=native)


def format_value(v: float) -> str:
    """A float the way Prometheus prints it (Go's FormatFloat 'f', -1)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")
