"""Read and validate rule files. Every error is collected (not just the first),
each as ``file:line:col: group "g", rule N "Name": message`` with a hint of
what to write instead."""
from __future__ import annotations

import difflib
import glob
import os
import re

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from alerting.rules import template
from alerting.rules.exprcheck import check_expr, expr_text
from alerting.rules.spec import (DEFAULT_INTERVAL, DEFAULT_LATENCY_METRIC, NO_DATA_MODES, GroupSpec,
                                 LatencySpec, Pos, RuleSpec, SloSpec)
from collector.durations import DurationError, parse_duration

GROUP_KEYS = ("name", "interval", "limit", "labels", "rules")
RULE_KEYS = ("alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations", "latency", "slo")
LATENCY_KEYS = ("metric", "match", "by", "quantile", "window", "above", "warn_above", "recover_below",
                "min_count", "no_data")
SLO_KEYS = ("objective", "latency_below", "period", "metric", "match", "by")

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def expand_paths(paths_or_globs) -> tuple[list[str], list[str]]:
    """Files named by paths, globs and directories (their *.yaml / *.yml)."""
    files, errors = [], []
    for p in paths_or_globs:
        if os.path.isdir(p):
            found = sorted(glob.glob(os.path.join(p, "*.yaml")) + glob.glob(os.path.join(p, "*.yml")))
        elif any(c in p for c in "*?["):
            found = sorted(glob.glob(p))
        elif os.path.exists(p):
            found = [p]
        else:
            errors.append(f"{p}: no such file or directory")
            continue
        files.extend(f for f in found if f not in files)
    return files, errors


class _Ctx:
    """Where we are, for messages."""

    def __init__(self, file: str, errors: list[str], default_interval: float = DEFAULT_INTERVAL):
        self.file, self.errors = file, errors
        self.default_interval = default_interval
        self.group: str | None = None
        self.rule: tuple[int, str] | None = None

    def pos(self, node, key=None) -> Pos:
        line = col = 0
        try:
            if key is not None and hasattr(node, "lc"):
                line, col = node.lc.value(key) if key in node else (node.lc.line, node.lc.col)
            elif hasattr(node, "lc"):
                line, col = node.lc.line, node.lc.col
        except (KeyError, TypeError, AttributeError):
            pass
        return Pos(self.file, line + 1, col + 1)

    def key_pos(self, node, key) -> Pos:
        try:
            line, col = node.lc.key(key)
            return Pos(self.file, line + 1, col + 1)
        except (KeyError, TypeError, AttributeError):
            return self.pos(node)

    def err(self, pos: Pos, msg: str) -> None:
        where = ""
        if self.group is not None:
            where = f'group "{self.group}"'
            if self.rule is not None:
                where += f', rule {self.rule[0]} "{self.rule[1]}"' if self.rule[1] else f", rule {self.rule[0]}"
            where += ": "
        self.errors.append(f"{pos}: {where}{msg}")


def _unknown_keys(ctx: _Ctx, node, known, what: str) -> None:
    for k in node:
        if k not in known:
            close = difflib.get_close_matches(str(k), known, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            ctx.err(ctx.key_pos(node, k), f'unknown key "{k}" in {what}; {hint}known keys: {", ".join(known)}')


def _duration(ctx, node, key, *, positive=False, default=0.0) -> float:
    if key not in node:
        return default
    try:
        v = parse_duration(node[key], numbers_are_seconds=False)
    except DurationError as e:
        ctx.err(ctx.pos(node, key), f"{key}: {e}")
        return default
    if positive and v <= 0:
        ctx.err(ctx.pos(node, key), f"{key}: must be greater than 0, e.g. 1m")
    elif v < 0:
        ctx.err(ctx.pos(node, key), f"{key}: must not be negative")
    return v


def _string_map(ctx, node, key, *, templates: bool) -> dict:
    if key not in node or node[key] is None:
        return {}
    m = node[key]
    if not isinstance(m, dict):
        ctx.err(ctx.pos(node, key), f"{key} must be a mapping of name: value, e.g. {key}: {{severity: page}}")
        return {}
    out = {}
    for k, v in m.items():
        p = ctx.pos(m, k)
        if not LABEL_NAME.match(str(k)) or str(k) == "__name__":
            ctx.err(ctx.key_pos(m, k), f'{key}: invalid name "{k}": use letters, digits and _, '
                                       "not starting with a digit")
            continue
        if isinstance(v, (dict, list)) or v is None:
            ctx.err(p, f'{key}: value of "{k}" must be a string; quote it')
            continue
        v = v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
        if templates:
            problem = template.check(v)
            if problem:
                ctx.err(p, f'{key}: template "{k}": {problem}')
        out[str(k)] = v
    return out


def _label_list(ctx, node, key) -> tuple:
    v = node.get(key)
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and LABEL_NAME.match(x) for x in v):
        ctx.err(ctx.pos(node, key), f"{key} must be a list of label names, e.g. {key}: [service_name, http_route]")
        return ()
    return tuple(v)


def _match(ctx, node) -> dict:
    m = _string_map(ctx, node, "match", templates=False)
    for k, v in m.items():
        if '"' in v or "\\" in v:
            ctx.err(ctx.pos(node["match"], k), f'match: value of "{k}" must not contain quotes or backslashes')
    return m


def _metric(ctx, node) -> str:
    m = node.get("metric", DEFAULT_LATENCY_METRIC)
    if not isinstance(m, str) or not METRIC_NAME.match(m):
        ctx.err(ctx.pos(node, "metric"), f"metric: {m!r} is not a metric name, e.g. {DEFAULT_LATENCY_METRIC}")
        return DEFAULT_LATENCY_METRIC
    return m


def _latency(ctx, node) -> LatencySpec | None:
    if not isinstance(node, dict):
        ctx.err(ctx.pos(node), "latency must be a mapping with at least `above: 500ms`")
        return None
    _unknown_keys(ctx, node, LATENCY_KEYS, "latency")
    n0 = len(ctx.errors)
    match = _match(ctx, node)
    by = _label_list(ctx, node, "by") if "by" in node else tuple(sorted(match))
    q = node.get("quantile", 0.95)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < q < 1:
        ctx.err(ctx.pos(node, "quantile"), f"quantile must be a number between 0 and 1 (exclusive), e.g. 0.95; "
                                           f"got {q!r}")
        q = 0.95
    if "above" not in node:
        ctx.err(ctx.pos(node), "latency needs `above:` (the critical threshold), e.g. above: 500ms")
    above = _duration(ctx, node, "above", positive=True) if "above" in node else 0.0
    warn = _duration(ctx, node, "warn_above", positive=True) if "warn_above" in node else None
    rec = _duration(ctx, node, "recover_below", positive=True) if "recover_below" in node else None
    if above and warn is not None and warn >= above:
        ctx.err(ctx.pos(node, "warn_above"), f"warn_above ({node['warn_above']}) must be below above "
                                             f"({node['above']}): it is the earlier, warning-level threshold")
    if above and rec is not None and rec > above:
        ctx.err(ctx.pos(node, "recover_below"), f"recover_below ({node['recover_below']}) must not be above "
                                                f"above ({node['above']}): a firing alert resolves once the "
                                                "value drops below it")
    mc = node.get("min_count", 0)
    if isinstance(mc, bool) or not isinstance(mc, int) or mc < 0:
        ctx.err(ctx.pos(node, "min_count"), f"min_count must be a whole number of requests >= 0, e.g. 20; got {mc!r}")
        mc = 0
    nd = node.get("no_data", "keep")
    if nd not in NO_DATA_MODES:
        ctx.err(ctx.pos(node, "no_data"), f"no_data must be one of ok, keep, alert; got {nd!r}")
    window = _duration(ctx, node, "window", positive=True, default=300.0)
    metric = _metric(ctx, node)
    if len(ctx.errors) > n0:
        return None
    return LatencySpec(above=above, metric=metric, match=match, by=by, quantile=float(q), window=window,
                       warn_above=warn, recover_below=rec, min_count=mc, no_data=nd)


def _objective(ctx, node) -> float | None:
    v = node.get("objective")
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            f = float(v.strip()[:-1]) / 100
        except ValueError:
            f = None
    elif isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1:
        f = float(v)
    else:
        f = None
    if f is None or not 0 < f < 1:
        ctx.err(ctx.pos(node, "objective") if "objective" in node else ctx.pos(node),
                f"objective must be a percentage below 100%, e.g. objective: 99.5% (or 0.995); got {v!r}")
        return None
    return f


def _slo(ctx, node) -> SloSpec | None:
    if not isinstance(node, dict):
        ctx.err(ctx.pos(node), "slo must be a mapping, e.g. {objective: 99.5%, latency_below: 500ms}")
        return None
    _unknown_keys(ctx, node, SLO_KEYS, "slo")
    n0 = len(ctx.errors)
    obj = _objective(ctx, node)
    if "latency_below" not in node:
        ctx.err(ctx.pos(node), "slo needs `latency_below:` (the latency a good request stays under), "
                               "e.g. latency_below: 500ms")
    below = _duration(ctx, node, "latency_below", positive=True)
    period = _duration(ctx, node, "period", positive=True, default=30 * 86400.0)
    if period and period < 3 * 86400:
        ctx.err(ctx.pos(node, "period"), "period must be at least 3d (the longest burn-rate window); "
                                         "30d is usual")
    match = _match(ctx, node)
    by = _label_list(ctx, node, "by") if "by" in node else tuple(sorted(match))
    metric = _metric(ctx, node)
    if len(ctx.errors) > n0:
        return None
    return SloSpec(objective=obj, latency_below=below, period=period, metric=metric, match=match, by=by)


def _rule(ctx, node, index: int) -> RuleSpec | None:
    if not isinstance(node, dict):
        ctx.err(ctx.pos(node), f"rule {index} must be a mapping with alert: or record:")
        return None
    name = node.get("alert", node.get("record", ""))
    ctx.rule = (index, name if isinstance(name, str) else str(name))
    n0 = len(ctx.errors)
    _unknown_keys(ctx, node, RULE_KEYS, "a rule")
    here = ctx.pos(node)
    if ("alert" in node) == ("record" in node):
        ctx.err(here, "a rule needs exactly one of `alert: Name` or `record: metric_name`")
        return None
    kind = "alert" if "alert" in node else "record"
    if not isinstance(name, str) or not name.strip():
        ctx.err(ctx.pos(node, kind), f"{kind} must be a non-empty name")
    elif kind == "record" and not METRIC_NAME.match(name):
        ctx.err(ctx.pos(node, kind), f'record: "{name}" is not a valid metric name; use letters, digits, _ and :, '
                                     "e.g. job:latency_p95:5m")
    bodies = [k for k in ("expr", "latency", "slo") if k in node]
    if kind == "record":
        for k in ("for", "keep_firing_for", "annotations", "latency", "slo"):
            if k in node:
                ctx.err(ctx.key_pos(node, k), f"`{k}` is only for alerting rules; remove it from a recording rule")
        if "expr" not in node:
            ctx.err(here, "a recording rule needs `expr:`")
    elif len(bodies) != 1:
        ctx.err(here, "an alerting rule needs exactly one of `expr:`, `latency:` or `slo:`" +
                (f", not {' and '.join(bodies)}" if bodies else ""))
    expr = ""
    expr_pos = None
    if "expr" in node:
        expr_pos = _text_pos(ctx, node, "expr")
        problem = check_expr(node["expr"])
        if problem:
            ctx.err(ctx.pos(node, "expr"), problem)
        else:
            expr = expr_text(node["expr"]).strip()
    lat = _latency(ctx, node["latency"]) if kind == "alert" and "latency" in node else None
    slo = _slo(ctx, node["slo"]) if kind == "alert" and "slo" in node else None
    for_ = _duration(ctx, node, "for")
    kff = _duration(ctx, node, "keep_firing_for")
    labels = _string_map(ctx, node, "labels", templates=kind == "alert")
    ann = _string_map(ctx, node, "annotations", templates=True)
    if len(ctx.errors) > n0:
        return None
    return RuleSpec(kind=kind, name=name, expr=expr, for_=for_, keep_firing_for=kff, labels=labels,
                    annotations=ann, latency=lat, slo=slo, pos=here, expr_pos=expr_pos)


def _text_pos(ctx, node, key) -> Pos:
    """Where the text of ``node[key]`` starts: the value itself, or for a block
    scalar (``expr: |``) the first non-blank character of its first line."""
    p = ctx.pos(node, key)
    if type(node.get(key)).__name__ not in ("LiteralScalarString", "FoldedScalarString"):
        return p
    try:
        with open(ctx.file, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return p
    for n in range(p.line, len(lines)):       # p.line is 1-based: lines[p.line] is the next line
        text = lines[n]
        if text.strip():
            return Pos(ctx.file, n + 1, len(text) - len(text.lstrip()) + 1)
    return p


def _group(ctx, node, index: int, seen: dict) -> GroupSpec | None:
    ctx.group, ctx.rule = None, None
    if not isinstance(node, dict):
        ctx.err(ctx.pos(node), f"group {index} must be a mapping with name: and rules:")
        return None
    name = node.get("name")
    if not isinstance(name, str) or not name.strip():
        ctx.err(ctx.pos(node), f"group {index} needs a non-empty `name:`")
        return None
    ctx.group = name
    n0 = len(ctx.errors)
    if name in seen:
        ctx.err(ctx.pos(node, "name"), f"group name repeated (first at {seen[name]}); group names must be unique")
    seen.setdefault(name, ctx.pos(node, "name"))
    _unknown_keys(ctx, node, GROUP_KEYS, "a group")
    interval = _duration(ctx, node, "interval", positive=True, default=ctx.default_interval)
    limit = node.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        ctx.err(ctx.pos(node, "limit"), f"limit must be a whole number >= 0 (0 = no limit); got {limit!r}")
    labels = _string_map(ctx, node, "labels", templates=False)
    rules_node = node.get("rules")
    rules = []
    if not isinstance(rules_node, list):
        ctx.err(ctx.pos(node, "rules") if "rules" in node else ctx.pos(node),
                "a group needs `rules:` with a list of rules")
    else:
        for i, r in enumerate(rules_node, 1):
            rules.append(_rule(ctx, r, i))
        ctx.rule = None
    if len(ctx.errors) > n0:
        return None
    return GroupSpec(name=name, file=ctx.file, interval=interval, limit=limit, labels=labels,
                     rules=tuple(rules), pos=ctx.pos(node))


def parse_text(text: str, file: str, seen: dict | None = None,
               default_interval: float = DEFAULT_INTERVAL) -> tuple[list[GroupSpec], list[str]]:
    errors: list[str] = []
    ctx = _Ctx(file, errors, default_interval)
    try:
        doc = YAML(typ="rt").load(text)
    except MarkedYAMLError as e:
        m = e.problem_mark or e.context_mark
        where = f"{file}:{m.line + 1}:{m.column + 1}" if m else file
        return [], [f"{where}: YAML: {e.problem or e.context}"]
    if doc is None:
        return [], []
    if not isinstance(doc, dict):
        return [], [f"{file}:1:1: a rule file is a mapping with `groups:`"]
    _unknown_keys(ctx, doc, ("groups",), "the file")
    groups_node = doc.get("groups")
    if not isinstance(groups_node, list):
        errors.append(f"{ctx.pos(doc, 'groups') if 'groups' in doc else Pos(file, 1, 1)}: "
                      "`groups:` must be a list of groups")
        return [], errors
    seen = {} if seen is None else seen
    groups = [_group(ctx, g, i, seen) for i, g in enumerate(groups_node, 1)]
    return [g for g in groups if g is not None], sorted(errors, key=_position)


def _position(msg: str) -> tuple[int, int]:
    m = re.match(r"^.*?:(\d+):(\d+): ", msg)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def load_files(paths_or_globs, default_interval: float = DEFAULT_INTERVAL) -> tuple[list[GroupSpec], list[str]]:
    """All groups of all files, and every error found. Group names are unique
    across files (the evaluator and the API address groups by name)."""
    files, errors = expand_paths(paths_or_globs)
    groups, seen = [], {}
    for f in files:
        try:
            with open(f, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as e:
            errors.append(f"{f}: {e.strerror}")
            continue
        g, errs = parse_text(text, f, seen, default_interval)
        groups.extend(g)
        errors.extend(errs)
    return groups, errors
