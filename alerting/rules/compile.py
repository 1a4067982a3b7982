"""Turn validated specs into what the evaluator runs: plain PromQL (the
``latency:`` and ``slo:`` short forms are expanded here, so ``rules check
--explain`` shows exactly what is queried)."""
from __future__ import annotations

from dataclasses import dataclass, field

from alerting.model import format_labels
from collector.durations import format_duration
from alerting.rules.spec import GroupSpec, LatencySpec, RuleSpec, SloSpec


@dataclass(frozen=True)
class LatencyCheck:
    """How a latency level decides, beyond ``value > above``."""
    value_expr: str             # histogram_quantile(...), no comparison
    count_expr: str             # requests in the window, for min_count
    above: float
    recover_below: float | None
    min_count: int
    no_data: str
    absent_labels: dict = field(default_factory=dict)   # labels of the no_data=alert alert


@dataclass(frozen=True)
class AlertingRule:
    group: str
    name: str
    key: str                    # identity within the group (name, plus level / occurrence)
    expr: str                   # what the API shows; for latency rules value_expr > above
    for_: float = 0.0
    keep_firing_for: float = 0.0
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    latency: LatencyCheck | None = None
    source: RuleSpec | None = None
    unit: str = ""              # "seconds": values are durations (latency rules)
    worse: str = "higher"       # which way a value gets worse ("lower" for `expr: x < 0.99`)


@dataclass(frozen=True)
class RecordingRule:
    group: str
    name: str
    key: str
    expr: str
    labels: dict = field(default_factory=dict)
    source: RuleSpec | None = None


@dataclass(frozen=True)
class Group:
    name: str
    file: str
    interval: float
    limit: int
    rules: tuple                # AlertingRule | RecordingRule
    spec: GroupSpec | None = None


def selector(metric: str, match: dict) -> str:
    if not match:
        return metric
    return metric + "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(match.items())) + "}"


def _by(by) -> str:
    return "sum by (" + ", ".join(by) + ")"


def _num(x: float) -> str:
    return repr(float(x)).removesuffix(".0") if float(x) == int(x) else repr(float(x))


def latency_exprs(lat: LatencySpec) -> tuple[str, str]:
    w = format_duration(lat.window)
    value = f"histogram_quantile({_num(lat.quantile)}, {_by(lat.by)} (rate({selector(lat.metric, lat.match)}[{w}])))"
    count = f"{_by(lat.by)} (increase({selector(lat.metric + '_count', lat.match)}[{w}]))"
    return value, count


# Google SRE workbook, "Alerting on SLOs", table 5-8: share of the error budget
# spent in the long window, and the long windows. Burn-rate thresholds follow
# from the period: 2% of 30d in 1h is a burn of 14.4.
SLO_WINDOWS = (
    ("page", 0.02, 3600.0),
    ("page", 0.05, 6 * 3600.0),
    ("ticket", 0.10, 3 * 86400.0),
)


def slo_burn_expr(slo: SloSpec, window: float) -> str:
    frac = (f"histogram_fraction(0, {_num(slo.latency_below)}, {_by(slo.by)} "
            f"(rate({selector(slo.metric, slo.match)}[{format_duration(window)}])))")
    return f"(1 - {frac}) / {_num(round(1 - slo.objective, 12))}"


def slo_exprs(slo: SloSpec) -> dict[str, str]:
    """severity -> expression (alerting when either window pair burns too fast)."""
    out: dict[str, list[str]] = {}
    for severity, budget, long_w in SLO_WINDOWS:
        burn = round(budget * slo.period / long_w, 6)
        cond = (f"({slo_burn_expr(slo, long_w)} > {_num(burn)} and "
                f"{slo_burn_expr(slo, long_w / 12)} > {_num(burn)})")
        out.setdefault(severity, []).append(cond)
    return {sev: " or ".join(conds) for sev, conds in out.items()}


def _with(d: dict, **extra) -> dict:
    out = dict(d)
    out.update(extra)
    return out


def compile_rule(group: GroupSpec, r: RuleSpec, key: str) -> list:
    labels = _with(group.labels, **r.labels)
    if r.kind == "record":
        return [RecordingRule(group.name, r.name, key, r.expr, labels, r)]
    if r.latency is not None:
        lat = r.latency
        value, count = latency_exprs(lat)
        absent = {k: v for k, v in lat.match.items() if k in lat.by}
        levels = [("critical", lat.above, lat.recover_below)]
        if lat.warn_above is not None:
            rec = lat.recover_below if lat.recover_below is not None and lat.recover_below < lat.warn_above else None
            levels.append(("warning", lat.warn_above, rec))
        out = []
        for severity, above, rec in levels:
            check = LatencyCheck(value, count, above, rec, lat.min_count, lat.no_data, absent)
            lab = _with(labels, severity=labels.get("severity", severity)) if len(levels) == 1 else \
                _with(labels, severity=severity)
            out.append(AlertingRule(group.name, r.name, f"{key}/{severity}", f"{value} > {_num(above)}",
                                    r.for_, r.keep_firing_for, lab, dict(r.annotations), check, r, unit="seconds"))
        return out
    if r.slo is not None:
        return [AlertingRule(group.name, r.name, f"{key}/{sev}", expr, r.for_, r.keep_firing_for,
                             _with(labels, severity=sev), dict(r.annotations), None, r)
                for sev, expr in slo_exprs(r.slo).items()]
    return [AlertingRule(group.name, r.name, key, r.expr, r.for_, r.keep_firing_for, labels,
                         dict(r.annotations), None, r, worse=worse_direction(r.expr))]


def worse_direction(expr: str) -> str:
    """"lower" when the expression fires on a low value (its outermost operator is
    ``<`` or ``<=``, as in ``availability < 0.99``), else "higher"."""
    try:
        import promql_parser

        node = promql_parser.parse(expr)
        while type(node).__name__ == "ParenExpr":
            node = node.expr
        op = str(getattr(node, "op", "")) if type(node).__name__ == "BinaryExpr" else ""
    except Exception:   # the loader has checked the expression; this is only a hint
        return "higher"
    return "lower" if op.rsplit(".", 1)[-1].lower() in ("<", "<=", "lss", "lte") else "higher"


def compile_group(g: GroupSpec) -> Group:
    rules, seen = [], {}
    for r in g.rules:
        n = seen[r.name] = seen.get(r.name, 0) + 1
        key = r.name if n == 1 else f"{r.name}#{n}"
        rules.extend(compile_rule(g, r, key))
    return Group(g.name, g.file, g.interval, g.limit, tuple(rules), g)


def _secs(x: float) -> str:
    """``0.5 (500ms)``: the number PromQL compares, and the duration it means."""
    return f"{_num(x)} ({format_duration(x)})"


def explain(g: Group) -> list[str]:
    """Human-readable lines: what each rule queries."""
    lines = [f'group "{g.name}" ({g.file}, every {format_duration(g.interval)}):']
    for r in g.rules:
        if isinstance(r, RecordingRule):
            lines.append(f"  record {r.name}: {r.expr}")
            continue
        lines.append(f"  alert {r.name}{format_labels(r.labels)}: for {format_duration(r.for_)}")
        if r.latency:
            c = r.latency
            lines.append(f"    value: {c.value_expr}")
            lines.append(f"    fires: value > {_secs(c.above)}" +
                         (f", stays firing until value < {_secs(c.recover_below)}" if c.recover_below else ""))
            lines.append(f"    count: {c.count_expr}" + (f" (no decision below {c.min_count})" if c.min_count
                                                          else " (min_count not set)"))
            lines.append(f"    no data: {c.no_data}")
        else:
            lines.append(f"    expr: {r.expr}")
    return lines
