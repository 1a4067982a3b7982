"""Checking a rule's `expr` at load time: it must parse as PromQL and give a
vector or a number. The parser often gives no position, so point at the first
unbalanced bracket instead."""
from __future__ import annotations

import promql_parser


def expr_text(expr):
    """A rule's ``expr`` as PromQL text: YAML numbers (``expr: 1``, ``12.34e6``) are
    PromQL numbers, as promtool reads them; anything else is returned unchanged."""
    if isinstance(expr, (int, float)) and not isinstance(expr, bool):
        return repr(float(expr)) if isinstance(expr, float) else str(int(expr))
    return expr


def check_expr(expr) -> str | None:
    expr = expr_text(expr)
    if not isinstance(expr, str) or not expr.strip():
        return "expr must be a non-empty PromQL string"
    try:
        e = promql_parser.parse(expr)
    except (ValueError, TypeError) as ex:
        return f"could not parse expression: {ex}" + _bracket_hint(expr)
    if isinstance(e, promql_parser.StringLiteral):
        return "expression returns a string; a rule needs a vector (or a number)"
    return None


def _bracket_hint(expr: str) -> str:
    """promql_parser often has no position: point at the first unbalanced bracket."""
    stack, quote = [], None
    for i, c in enumerate(expr):
        if quote:
            if c == quote and expr[i - 1] != "\\":
                quote = None
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            stack.append((c, i))
        elif c in ")]}":
            if not stack or "([{"[")]}".index(c)] != stack[-1][0]:
                return f" (unmatched {c!r} at column {i + 1} of the expression)"
            stack.pop()
    if stack:
        c, i = stack[-1]
        return f" (unclosed {c!r} at column {i + 1} of the expression)"
    return ""


# -- expressions that can never produce a sample ------------------------------------------------

# Metrics that only ever hold histogram samples in Tocsin whatever was sent: the
# span-duration histogram. Others (OTLP and remote-write histograms) are known only
# to a running server: ``rules check --url`` asks it (histogram_metrics_of).
HISTOGRAM_METRICS = frozenset({"traces_span_metrics_duration_seconds"})
# Aggregations that ignore histogram samples (Prometheus answers them with an info).
_FLOAT_AGGS = {"min", "max", "topk", "bottomk", "quantile", "stddev", "stdvar", "count_values"}
# Functions of floats only: a histogram argument gives no sample.
_FLOAT_FUNCS = {"abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10", "sgn", "clamp", "clamp_min",
                "clamp_max", "deg", "rad", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
                "asinh", "acosh", "atanh", "max_over_time", "min_over_time", "quantile_over_time",
                "stddev_over_time", "stdvar_over_time", "mad_over_time", "deriv", "predict_linear",
                "double_exponential_smoothing", "ts_of_max_over_time", "ts_of_min_over_time", "scalar",
                "day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute", "month", "year"}
# Functions whose result is histograms when their argument is.
_HIST_KEEP = {"rate", "increase", "irate", "delta", "idelta", "last_over_time", "first_over_time",
              "sum_over_time", "avg_over_time", "sort", "sort_desc", "sort_by_label", "sort_by_label_desc",
              "label_replace", "label_join", "limitk"}


def _kind(n) -> str:
    return type(n).__name__


def _hist_only(n, hist_metrics=HISTOGRAM_METRICS) -> bool:
    """True when the expression can only give histogram samples."""
    return _hist_only_in(n, hist_metrics)


def _hist_only_in(n, hist_metrics) -> bool:
    def _hist_only(x):
        return _hist_only_in(x, hist_metrics)

    k = _kind(n)
    if k == "ParenExpr" or k == "UnaryExpr":
        return _hist_only(n.expr)
    if k == "VectorSelector":
        names = {m.value for m in n.matchers.matchers if m.name == "__name__" and str(m.op) == "MatchOp.Equal"}
        if n.name:
            names.add(n.name)
        return bool(names) and names <= hist_metrics
    if k == "MatrixSelector":
        return _hist_only(n.vector_selector)
    if k == "SubqueryExpr":
        return _hist_only(n.expr)
    if k == "AggregateExpr":
        return str(n.op) in ("sum", "avg", "limitk", "limit_ratio") and _hist_only(n.expr)
    if k == "Call":
        args = list(n.args)
        return n.func.name in _HIST_KEEP and bool(args) and _hist_only(args[0])
    if k == "BinaryExpr":
        op = str(n.op)
        if op in ("+", "-"):
            return _hist_only(n.lhs) and _hist_only(n.rhs)
        if op in ("*", "/"):
            return (_hist_only(n.lhs) and _kind(n.rhs) == "NumberLiteral") or \
                   (op == "*" and _hist_only(n.rhs) and _kind(n.lhs) == "NumberLiteral")
        if op in ("and", "unless"):
            return _hist_only(n.lhs)
        if op == "or":
            return _hist_only(n.lhs) and _hist_only(n.rhs)
    return False


def _children(n):
    k = _kind(n)
    if k in ("ParenExpr", "UnaryExpr"):
        return [n.expr]
    if k == "MatrixSelector":
        return [n.vector_selector]
    if k == "SubqueryExpr":
        return [n.expr]
    if k == "AggregateExpr":
        return [x for x in (n.param, n.expr) if x is not None]
    if k == "Call":
        return list(n.args)
    if k == "BinaryExpr":
        return [n.lhs, n.rhs]
    return []


def never_samples(expr: str, hist_metrics=HISTOGRAM_METRICS) -> list[str]:
    """Why parts of ``expr`` can never produce a sample on the series they select
    (e.g. ``max`` over a histogram-only metric: Prometheus and Tocsin ignore
    histogram samples there). ``hist_metrics``: the metric names known to hold
    only histograms. Empty when nothing is known to be wrong."""
    hist_metrics = frozenset(hist_metrics)

    def _hist_only(x):
        return _hist_only_in(x, hist_metrics)

    try:
        root = promql_parser.parse(expr)
    except (ValueError, TypeError):
        return []
    return [msg for _, msg in _findings(root, expr, _hist_only)]


def never_samples_at(expr: str, hist_metrics=HISTOGRAM_METRICS) -> list[tuple[int, str]]:
    """As never_samples, each with the 0-based offset in ``expr`` of the operator
    or function at fault (0 when it cannot be found)."""
    hist_metrics = frozenset(hist_metrics)
    try:
        root = promql_parser.parse(expr)
    except (ValueError, TypeError):
        return []
    return _findings(root, expr, lambda x: _hist_only_in(x, hist_metrics))


def _offset(expr: str, token: str, start: int) -> int:
    import re

    word = re.escape(token)
    m = re.compile(rf"(?<![\w:]){word}\s*(\(|by\b|without\b)" if token[0].isalpha() else word).search(expr, start)
    if m is None and start:
        m = re.compile(rf"(?<![\w:]){word}").search(expr)
    return m.start() if m else 0


def _findings(root, expr: str, hist_only) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    stack = [root]
    while stack:
        n = stack.pop()
        k = _kind(n)
        if k == "AggregateExpr" and str(n.op) in _FLOAT_AGGS and hist_only(n.expr):
            out.append((_offset(expr, str(n.op), 0),
                        f"{n.op}(...) ignores histogram samples, and {n.expr} has only histograms: it never "
                        "produces a sample (use histogram_quantile/histogram_count/histogram_sum first)"))
        elif k == "Call" and n.func.name in _FLOAT_FUNCS and n.args and any(hist_only(a) for a in n.args):
            out.append((_offset(expr, n.func.name, 0),
                        f"{n.func.name}() takes only float samples, and its argument has only histograms: "
                        "it never produces a sample"))
        elif k == "BinaryExpr" and str(n.op) not in ("+", "-", "*", "/", "and", "or", "unless") and \
                (hist_only(n.lhs) or hist_only(n.rhs)):
            out.append((_offset(expr, str(n.op), 0),
                        f"operator {n.op} drops histogram samples, and one side has only histograms: "
                        "it never produces a sample"))
        stack.extend(_children(n))
    return out


def histogram_metrics_of(url: str, headers: dict, timeout: float = 10.0) -> frozenset:
    """The metric names a running Tocsin serves as histograms (its
    ``/api/v1/metadata`` type "histogram": series stored as histograms, whose
    name selects histogram samples only)."""
    import httpx

    r = httpx.get(url.rstrip("/") + "/api/v1/metadata", headers=headers, timeout=timeout)
    r.raise_for_status()
    data = r.json().get("data") or {}
    return frozenset(name for name, entries in data.items()
                     if entries and all(e.get("type") == "histogram" for e in entries))
