"""The alert value handed from the evaluator to the notifiers (after Alertmanager's
``types.Alert``). Immutable; a new value is sent at every evaluation."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def fingerprint(labels: dict[str, str]) -> str:
    """Stable identity of an alert: a hash of its sorted labels (16 hex chars)."""
    h = hashlib.sha256()
    for k in sorted(labels):
        h.update(k.encode() + b"\xff" + labels[k].encode() + b"\xff")
    return h.hexdigest()[:16]


def format_labels(labels: dict[str, str]) -> str:
    """``{service_name="checkout", severity="critical"}``: Prometheus's notation, values
    escaped as PromQL strings (so a newline in a sender's label cannot forge a log line)."""
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return "{" + ", ".join(f'{k}="{esc(str(v))}"' for k, v in sorted(labels.items())) + "}"


@dataclass(frozen=True)
class TraceExample:
    """A request behind an alert: an exemplar of the rule's histogram (a slow span),
    so a page links to the trace itself. ``url`` is filled in from ``notify.trace_url``
    when the alert enters the notification pipeline (empty when none is configured)."""

    trace_id: str          # 32 lowercase hex digits
    span_id: str           # 16 lowercase hex digits
    value: float           # seconds
    at: float              # unix seconds, when the span ended
    url: str = ""


@dataclass(frozen=True)
class Alert:
    labels: dict[str, str]                 # includes alertname, severity, rule labels
    annotations: dict[str, str] = field(default_factory=dict)
    state: str = "firing"                  # "pending" | "firing" | "resolved" (only firing/resolved are sent)
    starts_at: float = 0.0                 # unix seconds: when the alert went firing (active since)
    ends_at: float = 0.0                   # unix seconds: when it resolved; 0 while firing
    value: float = float("nan")            # the expression's value at the last evaluation (resolved: at resolve time)
    generator_url: str = ""
    worst: float = float("nan")            # the value at its worst since the alert went active
    unit: str = ""                         # "seconds" for latency rules: values read as durations
    examples: tuple = ()                   # TraceExample, slowest first (latency pages; up to three)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def resolved(self) -> bool:
        return self.state == "resolved"
