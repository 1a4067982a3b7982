"""Evaluate one rule at one time: query, decide per label set, step the state
machine. No I/O beyond the ``query`` function handed in."""
from __future__ import annotations

import math
import urllib.parse
from dataclasses import dataclass, field

from alerting.evaluate.state import FIRING, INACTIVE, PENDING, Observation, step
from alerting.model import Alert, fingerprint
from alerting.rules import template
from alerting.rules.compile import AlertingRule, RecordingRule


class RuleEvalError(Exception):
    pass


@dataclass(frozen=True)
class RuleResult:
    entries: dict                       # fingerprint -> AlertEntry (alerting rules)
    samples: list                       # (metric, labels, value) to record at t
    skipped: dict = field(default_factory=dict)   # reason -> count
    error: str = ""
    empty: bool = False                 # the query returned nothing


def _strip_name(labels: dict) -> dict:
    return {k: v for k, v in labels.items() if k != "__name__"}


def _labels_key(labels: dict) -> tuple:
    return tuple(sorted(labels.items()))


def _alert_labels(rule: AlertingRule, sample_labels: dict, value: float, ext: dict) -> tuple[dict, dict]:
    data = {"labels": sample_labels, "value": value, "externalLabels": ext.get("labels", {}),
            "externalURL": ext.get("url", "")}
    labels = dict(sample_labels)
    for k, v in rule.labels.items():
        labels[k] = template.render(v, data)
    labels["alertname"] = rule.name
    ann = {k: template.render(v, data) for k, v in rule.annotations.items()}
    return labels, ann


def _check_limit(n: int, limit: int, what: str) -> None:
    if limit and n > limit:
        raise RuleEvalError(f"exceeded limit of {limit} with {n} {what}")


def _observe_plain(rule: AlertingRule, query, t: float, ext: dict):
    observed = {}
    res = query(rule.expr, t)
    for labels, value in res:
        labels, ann = _alert_labels(rule, _strip_name(labels), value, ext)
        fp = fingerprint(labels)
        if fp in observed:
            raise RuleEvalError("vector contains metrics with the same labelset after applying alert labels")
        observed[fp] = Observation(labels, ann, float(value), True)
    return observed, set(), {}, not res


def _observe_latency(rule: AlertingRule, entries: dict, query, t: float, ext: dict):
    c = rule.latency
    values = query(c.value_expr, t)
    counts = {}
    if c.min_count:
        counts = {_labels_key(_strip_name(l)): v for l, v in query(c.count_expr, t)}
    observed, held, skipped = {}, set(), {}

    def skip(reason):
        skipped[reason] = skipped.get(reason, 0) + 1

    def no_data(labels, ann, fp):
        if c.no_data == "keep":
            held.add(fp)
            skip("no_data")
        else:
            observed[fp] = Observation(labels, ann, math.nan, c.no_data == "alert")
            if c.no_data == "ok":
                skip("no_data")

    for slabels, value in values:
        slabels = _strip_name(slabels)
        value = float(value)
        labels, ann = _alert_labels(rule, slabels, value, ext)
        fp = fingerprint(labels)
        if fp in observed or fp in held:
            raise RuleEvalError("vector contains metrics with the same labelset after applying alert labels")
        n = counts.get(_labels_key(slabels), 0.0)
        if math.isnan(value) and not (c.min_count and n):
            no_data(labels, ann, fp)
            continue
        if c.min_count and not n >= c.min_count:
            held.add(fp)
            skip("min_count")
            continue
        prev = entries.get(fp)
        if prev is not None and prev.state == FIRING and c.recover_below is not None:
            active = value >= c.recover_below       # hysteresis: resolve only below recover_below
        else:
            active = value > c.above
        observed[fp] = Observation(labels, ann, value, active)
    for fp, e in entries.items():               # tracked label sets the query no longer returns
        if fp not in observed and fp not in held and e.state != INACTIVE:
            no_data(e.labels, e.annotations, fp)
    if not values and not entries and c.no_data == "alert":
        labels, ann = _alert_labels(rule, dict(c.absent_labels), math.nan, ext)
        observed[fingerprint(labels)] = Observation(labels, ann, math.nan, True)
    if not values:          # the rule produced nothing: one skipped evaluation, whatever was tracked
        skipped = {k: v for k, v in skipped.items() if k != "no_data"}
        if c.no_data != "alert":
            skipped["no_data"] = 1
    return observed, held, skipped, not values


def eval_alerting(rule: AlertingRule, entries: dict, query, t: float, limit: int = 0,
                  ext: dict | None = None) -> RuleResult:
    ext = ext or {}
    try:
        if rule.latency is not None:
            observed, held, skipped, empty = _observe_latency(rule, entries, query, t, ext)
        else:
            observed, held, skipped, empty = _observe_plain(rule, query, t, ext)
        new = step(entries, observed, held, t, rule.for_, rule.keep_firing_for, rule.worse)
        _check_limit(sum(1 for e in new.values() if e.state in (PENDING, FIRING)), limit, "alerts")
    except Exception as e:  # a bad query must not stop the other rules of the group
        return RuleResult(entries, alert_samples(rule, entries), {}, _message(e))
    return RuleResult(new, alert_samples(rule, new), skipped, "", empty)


def _message(e: Exception) -> str:
    return str(e) or type(e).__name__


def eval_recording(rule: RecordingRule, query, t: float, limit: int = 0) -> RuleResult:
    try:
        res = query(rule.expr, t)
        _check_limit(len(res), limit, "series")
        samples, seen = [], set()
        for labels, value in res:
            labels = _strip_name(labels)
            labels.update(rule.labels)
            key = _labels_key(labels)
            if key in seen:
                raise RuleEvalError("vector contains metrics with the same labelset after applying rule labels")
            seen.add(key)
            samples.append((rule.name, labels, float(value)))
    except Exception as e:
        return RuleResult({}, [], {}, _message(e))
    return RuleResult({}, samples, {"no_data": 1} if not res else {}, "", not res)


def alert_samples(rule: AlertingRule, entries: dict) -> list:
    """ALERTS and ALERTS_FOR_STATE for active alerts, as Prometheus writes them."""
    out = []
    for e in entries.values():
        if e.state in (PENDING, FIRING):
            out.append(("ALERTS", {**e.labels, "alertstate": e.state}, 1.0))
            out.append(("ALERTS_FOR_STATE", dict(e.labels), e.active_at))
    return out


def generator_url(external_url: str, expr: str) -> str:
    q = urllib.parse.urlencode({"g0.expr": expr, "g0.tab": "1"}, quote_via=urllib.parse.quote)
    return f"{external_url.rstrip('/')}/graph?{q}"


def to_alerts(rule: AlertingRule, entries: dict, external_url: str) -> list[Alert]:
    """Firing and recently resolved alerts, as sent to the notifiers."""
    out = []
    for e in entries.values():
        if e.state == FIRING:
            out.append(Alert(dict(e.labels), dict(e.annotations), "firing", e.fired_at, 0.0, e.value,
                             generator_url(external_url, rule.expr), e.worst, rule.unit))
        elif e.state == INACTIVE and e.fired_at:
            out.append(Alert(dict(e.labels), dict(e.annotations), "resolved", e.fired_at, e.resolved_at,
                             e.value, generator_url(external_url, rule.expr), e.worst, rule.unit))
    return out
