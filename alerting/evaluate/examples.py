"""Example slow requests for a latency page: the exemplars of the rule's histogram
for the alert's own series, over the rule's window, slowest first (up to three).

No I/O here: the manager is handed ``find(selector, start_s, end_s)``, which
answers like ``/api/v1/query_exemplars`` (collector/query/exemplars.py) — a list
of ``{"seriesLabels", "exemplars": [{"labels": {"trace_id", "span_id"}, "value",
"timestamp"}]}``.

Which alerts: firing alerts of ``latency:`` rules (the window and ``match`` of the
rule, the alert's ``by`` labels) and of ``slo:`` rules (the last hour, requests
slower than ``latency_below``). The slowest requests in the window are the
natural examples: the rule fired because the tail is slow, and every octave's
slowest request of every slot is kept, so the window's slowest always are.
"""
from __future__ import annotations

import logging
import re
from dataclasses import replace

from alerting.model import Alert, TraceExample

log = logging.getLogger("tocsin.rules")

MAX_EXAMPLES = 3
SLO_WINDOW_S = 3600.0
_HEX = re.compile(r"[0-9a-f]+")


def _quote(v: str) -> str:
    """A PromQL string literal: label values come from senders."""
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def lookup(rule, alert: Alert) -> tuple[str, float, float] | None:
    """(selector, window in seconds, threshold) for an alert of a latency or SLO rule, else None."""
    spec = getattr(rule, "source", None)
    lat = getattr(spec, "latency", None)
    slo = getattr(spec, "slo", None)
    if lat is not None:
        metric, match, by, window = lat.metric, lat.match, lat.by, lat.window
        threshold = rule.latency.above if rule.latency is not None else lat.above
    elif slo is not None:
        metric, match, by, window, threshold = slo.metric, slo.match, slo.by, SLO_WINDOW_S, slo.latency_below
    else:
        return None
    labels = dict(match)
    for k in by:
        if k in alert.labels:
            labels[k] = alert.labels[k]
    inner = ", ".join(f"{k}={_quote(v)}" for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}" if inner else metric, window, threshold


def pick(found: list[dict], limit: int = MAX_EXAMPLES) -> tuple[TraceExample, ...]:
    """The slowest distinct traces among ``find``'s answer."""
    cands = []
    for series in found:
        for ex in series.get("exemplars", ()):
            lab = ex.get("labels", {})
            tid, sid = str(lab.get("trace_id", "")).lower(), str(lab.get("span_id", "0" * 16)).lower()
            if len(tid) != 32 or len(sid) != 16 or not _HEX.fullmatch(tid + sid):
                continue
            try:
                cands.append((float(ex["value"]), float(ex["timestamp"]), tid, sid))
            except (KeyError, TypeError, ValueError):
                continue
    cands.sort(key=lambda c: (-c[0], c[1]))
    out, seen = [], set()
    for value, at, tid, sid in cands:
        if tid in seen:
            continue
        seen.add(tid)
        out.append(TraceExample(tid, sid, value, at))
        if len(out) == limit:
            break
    return tuple(out)


def attach(pairs: list[tuple[object, Alert]], find, t: float) -> list[Alert]:
    """The alerts, firing ones of latency and SLO rules with their examples."""
    out = []
    for rule, alert in pairs:
        q = lookup(rule, alert) if find is not None and alert.state == "firing" else None
        if q is not None:
            selector, window, _ = q
            try:
                examples = pick(find(selector, t - window, t))
            except Exception:   # a page goes out without examples rather than not at all
                log.exception("could not look up example traces for %s", alert.name)
                examples = ()
            if examples:
                alert = replace(alert, examples=examples)
        out.append(alert)
    return out
