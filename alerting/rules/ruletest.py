"""``tocsin rules test``: rule unit tests in the format of ``promtool test rules``
(rule_files, evaluation_interval, group_eval_order, tests: interval,
input_series, alert_rule_test, promql_expr_test, external_labels,
external_url), plus ``latency_series`` (see alerting.rules.latencyseries).

Like promtool, every group is evaluated at every evaluation_interval step from
time 0 to the largest eval_time; recorded series and ALERTS are written back
into the data, so later steps and promql_expr_test see them."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from alerting.evaluate.manager import RuleManager
from collector.durations import DurationError, format_duration, parse_duration
from alerting.rules.latencyseries import LatencySeriesError, build_rows, parse_steps
from collector.model import KIND_GAUGE, NS, SampleRows, Series, make_labels, series_id
from collector.query import exphist


class RuleTestError(ValueError):
    pass


def make_engine(source):
    """collector.query's Engine over a data source (written by the query area)."""
    try:
        from collector.query import Engine
    except ImportError:
        try:
            from collector.query.engine import Engine
        except ImportError:
            raise RuleTestError("the query engine (collector.query.Engine) is not available in this build; "
                                "rule unit tests need it") from None
    return Engine(source)


class WritableSource:
    """A DataSource over a MemorySource plus the samples rules recorded while
    the test runs (recording rules, ALERTS, ALERTS_FOR_STATE)."""

    def __init__(self, base):
        self.base = base
        self.catalog = base.catalog
        self._sids, self._ts, self._vals = [], [], []
        self._cache = None

    def record(self, metric: str, labels: dict, t: float, value: float) -> None:
        lab = make_labels(labels)
        sid = series_id(metric, lab)
        self.catalog.add(Series(sid, metric, lab, KIND_GAUGE))
        self._sids.append(sid)
        self._ts.append(int(round(t * NS)))
        self._vals.append(float(value))
        self._cache = None

    def read_hist(self, series_ids, start_ns, end_ns):
        return self.base.read_hist(series_ids, start_ns, end_ns)

    def read_native(self, series_ids, start_ns, end_ns):
        return self.base.read_native(series_ids, start_ns, end_ns)

    def record_histogram(self, metric: str, labels: dict, t: float, h) -> None:
        """A recording rule's histogram sample (exphist.NH), kept exactly like input series."""
        from collector.model import KIND_NATIVE

        lab = make_labels(labels)
        sid = series_id(metric, lab)
        self.catalog.add(Series(sid, metric, lab, KIND_NATIVE))
        ts, vals = self.base.native.get(sid, (np.zeros(0, np.int64), []))
        t_ns = int(round(t * NS))
        keep = ts != t_ns
        vals = [v for v, k in zip(vals, keep) if k] + [h]
        ts = np.append(ts[keep], t_ns)
        order = np.argsort(ts, kind="stable")
        self.base.native[sid] = (ts[order], [vals[i] for i in order])

    def read_samples(self, series_ids, start_ns, end_ns):
        base = self.base.read_samples(series_ids, start_ns, end_ns)
        if not self._sids:
            return base
        if self._cache is None:
            self._cache = (np.array(self._sids, np.uint64), np.array(self._ts, np.int64), np.array(self._vals))
        sid, ts, val = self._cache
        keep = np.isin(sid, np.asarray(series_ids, np.uint64)) & (ts >= start_ns) & (ts <= end_ns)
        rows = SampleRows.concat([base, SampleRows(sid[keep], ts[keep], val[keep])])
        order = np.lexsort((rows.ts, rows.series_id))
        return SampleRows(rows.series_id[order], rows.ts[order], rows.value[order])


@dataclass(frozen=True)
class Failure:
    test: str
    message: str


def _dur(v, what: str) -> float:
    try:
        return parse_duration(v if v is not None else "0s", numbers_are_seconds=False)
    except DurationError as e:
        raise RuleTestError(f"{what}: {e}") from None


def _build_source(test: dict, interval: float):
    from collector.query import seriesnotation, memsource

    floats = [(s["series"], str(s.get("values", ""))) for s in test.get("input_series") or []]
    base = seriesnotation.load(floats, interval)
    lat = []
    for s in test.get("latency_series") or []:
        metric, labels = seriesnotation.parse_series(s["series"])
        lat.append((metric, labels, parse_steps(s.get("values", []))))
    if lat:
        hist = build_rows(lat, interval, base.catalog)
        base = memsource.MemorySource(base.catalog, hist=hist, samples=base.samples, native=base.native)
    return WritableSource(base)


def _labels_of(text: str) -> dict:
    """promtool's ParseMetric: ``name{a="b"}`` or ``{__name__="name", a="b"}`` or ``{a="b"}``;
    the metric name is kept as ``__name__``."""
    import promql_parser

    t = text.strip()
    if t.replace(" ", "") in ("", "{}"):
        return {}
    try:
        node = promql_parser.parse(t)
    except ValueError as e:
        raise ValueError(f"1:1: parse error: {e}") from None
    if type(node).__name__ != "VectorSelector" or node.at is not None or node.offset is not None:
        raise ValueError("1:1: parse error: not a metric")
    labels: dict[str, str] = {}
    if node.name:
        labels["__name__"] = node.name
    for m in node.matchers.matchers:
        if str(m.op) != "MatchOp.Equal":
            raise ValueError(f"1:1: parse error: only = matchers are allowed in a metric, got {m.name!r}")
        labels[m.name] = m.value
    return labels


def _fmt_labels(d: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}"


def _run_one(test: dict, idx: int, rule_files: list[str], eval_interval: float, order: list[str],
             ) -> list[Failure]:
    name = test.get("name") or ""
    interval = _dur(test.get("interval", format_duration(eval_interval)), f"{name}: interval")
    source = _build_source(test, interval)
    engine = make_engine(source)
    got_alerts: dict[float, list] = {}
    mgr = RuleManager(None, _query_recording_histograms(engine, source, lambda: mgr), source.record,
                      lambda alerts: None, None,
                      clock=lambda: 0.0, external_url=str(test.get("external_url", "")),
                      external_labels=dict(test.get("external_labels") or {}))
    errors = mgr.load(rule_files)
    if errors:
        raise RuleTestError("\n".join(errors))
    groups = [g.name for g in mgr.groups()]
    if order:
        missing = [g for g in order if g not in groups]
        if missing:
            raise RuleTestError(f"group_eval_order names unknown groups: {', '.join(missing)}")
        groups = list(order) + [g for g in groups if g not in order]
    alert_tests = test.get("alert_rule_test") or []
    expr_tests = test.get("promql_expr_test") or []
    times = [_dur(a.get("eval_time"), f"{name}: eval_time") for a in alert_tests + expr_tests]
    maxt = max(times, default=0.0)
    check_at = sorted({_dur(a.get("eval_time"), "eval_time") for a in alert_tests})
    steps = int(math.floor(maxt / eval_interval + 1e-9)) + 1
    for i in range(steps):
        ts = i * eval_interval
        for g in groups:
            mgr.evaluate_group(g, ts)
        for e in check_at:
            if ts <= e < ts + eval_interval:
                got_alerts[e] = [(r.name, dict(en.labels), dict(en.annotations))
                                 for r, en in mgr.active() if en.state == "firing"]
    failures = []
    for a in alert_tests:
        e = _dur(a.get("eval_time"), "eval_time")
        aname = a.get("alertname", "")
        got = sorted((_fmt_labels(l), _fmt_labels(an)) for n, l, an in got_alerts.get(e, []) if n == aname)
        exp = []
        for x in a.get("exp_alerts") or []:
            labels = {str(k): str(v) for k, v in (x.get("exp_labels") or {}).items()}
            labels["alertname"] = aname
            exp.append((_fmt_labels(labels),
                        _fmt_labels({str(k): str(v) for k, v in (x.get("exp_annotations") or {}).items()})))
        if sorted(exp) != got:
            failures.append(Failure(name, f"alertname: {aname}, time: {format_duration(e)}, \n"
                                          f"        exp:{_show(sorted(exp))}, \n        got:{_show(got)}"))
    fuzzy = bool(test.get("fuzzy_compare", False))
    for x in expr_tests:
        failures.extend(_expr_case(engine, name, x, fuzzy))
    return failures


def _query_recording_histograms(engine, source, manager):
    """The rule evaluator's query function for rule tests. The evaluator records
    float samples; a recording rule whose result holds histograms gets those
    recorded here, exactly, under the rule's name and labels (as Prometheus
    records histogram samples), before later rules of the group read them."""
    from collector.query import nhmat
    from alerting.rules.compile import RecordingRule

    def query(expr: str, t: float):
        res = engine.instant(expr, t)
        if res.type == "scalar":
            return [({}, float(res.value[0]))]
        if res.type != "vector":
            raise RuleTestError(f"expression {expr!r} gives a {res.type}, not an instant vector or scalar")
        if res.hist_series:
            rules = [r for g in manager().groups() for r in g.rules if isinstance(r, RecordingRule) and r.expr == expr]
            for r in rules:
                for labels, m in res.hist_series:
                    h = nhmat.as_nh(m, 0)
                    if h is not None:
                        out = {k: v for k, v in labels.items() if k != "__name__"}
                        out.update(r.labels)
                        source.record_histogram(r.name, out, t, h)
        return [(labels, v) for labels, v in res.samples()]

    return query


def _expr_text(expr) -> str:
    """promtool reads ``expr`` as a string: ``expr: 1`` and ``expr: 12.34e6`` are numbers in YAML."""
    if isinstance(expr, bool) or expr is None:
        return "" if expr is None else str(expr).lower()
    if isinstance(expr, float):
        return repr(expr)
    return str(expr)


def _expr_case(engine, name: str, x: dict, fuzzy: bool) -> list[Failure]:
    """One promql_expr_test: a malformed case reports itself, the others still run."""
    expr = _expr_text(x.get("expr", ""))
    try:
        e = _dur(x.get("eval_time"), "eval_time")
    except RuleTestError as ex:
        return [Failure(name, f"    expr: {_q(expr)}, err: {ex}")]
    when = format_duration(e)
    try:
        exp = []
        for smp in x.get("exp_samples") or []:
            text = smp.get("labels") or ""
            try:
                labels = _labels_of(str(text)) if text else {}
            except ValueError as ex:
                raise RuleTestError(f"labels {_q(str(text))}: {ex}") from None
            hist = smp.get("histogram")
            if hist is not None:   # promtool compares the histogram's notation as Prometheus prints it
                try:
                    exp.append((_fmt_labels(labels), exphist.parse(str(hist)).test_expression()))
                except exphist.NotationError as ex:
                    raise RuleTestError(f"histogram of labels {_q(str(text))}: {ex}") from None
                continue
            try:
                value = float(smp.get("value", 0))
            except (TypeError, ValueError):
                raise RuleTestError(f"value {smp.get('value')!r} of labels {_q(str(text))} is not a number") from None
            exp.append((_fmt_labels(labels), value))
    except RuleTestError as ex:
        return [Failure(name, f"    expr: {_q(expr)}, time: {when}, err: {ex}")]
    try:
        got = _instant_samples(engine, expr, e)
    except Exception as ex:
        return [Failure(name, f"    expr: {_q(expr)}, time: {when}, err: {ex}")]
    got.sort(key=_sample_key)
    exp.sort(key=_sample_key)
    same = len(got) == len(exp) and all(gl == el and _same_value(gv, ev, fuzzy)
                                        for (gl, gv), (el, ev) in zip(got, exp))
    if same:
        return []
    return [Failure(name, f"    expr: {_q(expr)}, time: {when},\n"
                          f"        exp: {_show_samples(exp)}\n        got: {_show_samples(got)}")]


def _instant_samples(engine, expr: str, t: float) -> list:
    """(labels, float or histogram notation) of an instant query, as promtool sees it."""
    from collector.query import nhmat

    res = engine.instant(expr, t)
    if res.type == "scalar":
        return [(_fmt_labels({}), float(res.value[0]))]
    if res.type != "vector":
        raise RuleTestError(f"expression {expr!r} gives a {res.type}, not an instant vector or scalar")
    out = [(_fmt_labels(l), float(v)) for l, v in res.samples()]
    for labels, m in res.hist_series:
        h = nhmat.as_nh(m, 0)
        if h is not None:
            out.append((_fmt_labels(labels), h.test_expression()))
    return out


def _sample_key(x):
    return (x[0], isinstance(x[1], str), x[1] if isinstance(x[1], str) else 0.0)


def _same_value(a, b, fuzzy: bool) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    return _equal(a, b, fuzzy)


def _q(s: str) -> str:
    """Go's %q."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _equal(a: float, b: float, fuzzy: bool) -> bool:
    """promtool compares exactly (NaN equals NaN); with ``fuzzy_compare: true`` within
    a relative 1e-6 as Prometheus's own test framework does."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return fuzzy and math.isclose(a, b, rel_tol=1e-6, abs_tol=0.0)


def go_float_e(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'E', -1, 64): the shortest digits that read back
    as v, so an expected and a got value never print alike unless they are equal."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    digits = repr(abs(v))
    mant, _, exp = digits.partition("e")
    if "." in mant:
        whole, frac = mant.split(".")
    else:
        whole, frac = mant, ""
    ex = int(exp) if exp else 0
    ds = (whole + frac).lstrip("0")
    if not ds:
        return ("-" if math.copysign(1, v) < 0 else "") + "0E+00"
    lead = len(whole.lstrip("0")) if whole.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    e10 = ex + lead - 1
    ds = ds.rstrip("0") or "0"
    m = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return f"{'-' if v < 0 else ''}{m}E{'+' if e10 >= 0 else '-'}{abs(e10):02d}"


def _show(items) -> str:
    if not items:
        return "[]"
    return "[\n" + "".join(f"            {i}:\n              Labels:{l}\n              Annotations:{a}\n"
                           for i, (l, a) in enumerate(items)) + "            ]"


def _show_samples(items) -> str:
    return ", ".join(f"{l} {v if isinstance(v, str) else go_float_e(v)}" for l, v in items) or "nil"


def run_file(path: str, out=print) -> bool:
    """Run one test file; print like promtool; True when everything passed."""
    out(f"Unit Testing:  {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = YAML(typ="safe").load(fh)
    except (OSError, YAMLError) as e:
        out(f"  FAILED:\n    {e}")
        return False
    try:
        doc = doc or {}
        base = os.path.dirname(os.path.abspath(path))
        files = [f if os.path.isabs(f) else os.path.join(base, f) for f in doc.get("rule_files") or []]
        eval_interval = _dur(doc.get("evaluation_interval", "1m"), "evaluation_interval")
        order = list(doc.get("group_eval_order") or [])
    except (RuleTestError, ValueError, KeyError, TypeError, AttributeError) as e:
        out(f"  FAILED:\n    {e}")
        return False
    failures = []
    for i, t in enumerate(doc.get("tests") or [], 1):
        try:   # a malformed test group reports itself; the others still run
            failures.extend(_run_one(t, i, files, eval_interval, order))
        except (RuleTestError, LatencySeriesError, ValueError, KeyError, TypeError, AttributeError) as e:
            tname = t.get("name") if isinstance(t, dict) else None
            failures.append(Failure(str(tname or ""), f"    {e}"))
    if failures:
        out("  FAILED:")
        for f in failures:
            out(f"    {f.test}:\n    {f.message}" if f.test else f"    {f.message}")
        return False
    out("  SUCCESS")
    return True
