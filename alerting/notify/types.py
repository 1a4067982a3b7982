"""Values passed between the notification stages, and the one error type a
notifier raises. A notifier only says whether a failure is worth retrying; the
retry stage (``deliver``) decides when."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from alerting.model import Alert, TraceExample


class NotifyError(Exception):
    """A failed delivery attempt. ``retryable`` False means the same request will
    never succeed (bad key, bad payload); ``retry_after`` is the server's wish in
    seconds (HTTP Retry-After), honoured by the retry stage."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 reason: str = "error"):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.reason = reason


@dataclass(frozen=True)
class Notification:
    """One message for one integration of one receiver about one alert group."""

    id: str
    receiver: str
    integration: str
    group_key: str
    group_labels: dict[str, str]
    firing: tuple[Alert, ...]
    resolved: tuple[Alert, ...]
    created_at: float
    group_interval: float = 300.0
    external_url: str = ""
    test: bool = False

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"

    @property
    def alerts(self) -> tuple[Alert, ...]:
        return self.firing + self.resolved

    @property
    def common_labels(self) -> dict[str, str]:
        return _common([a.labels for a in self.alerts])

    @property
    def common_annotations(self) -> dict[str, str]:
        return _common([a.annotations for a in self.alerts])

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "receiver": self.receiver, "integration": self.integration,
                "group_key": self.group_key, "group_labels": dict(self.group_labels),
                "firing": [alert_to_dict(a) for a in self.firing],
                "resolved": [alert_to_dict(a) for a in self.resolved],
                "created_at": self.created_at, "group_interval": self.group_interval,
                "external_url": self.external_url, "test": self.test}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Notification":
        return Notification(id=d["id"], receiver=d["receiver"], integration=d["integration"],
                            group_key=d["group_key"], group_labels=dict(d["group_labels"]),
                            firing=tuple(alert_from_dict(a) for a in d["firing"]),
                            resolved=tuple(alert_from_dict(a) for a in d["resolved"]),
                            created_at=float(d["created_at"]), group_interval=float(d.get("group_interval", 300)),
                            external_url=d.get("external_url", ""), test=bool(d.get("test", False)))


def _common(dicts: list[dict[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    out = dict(dicts[0])
    for d in dicts[1:]:
        out = {k: v for k, v in out.items() if d.get(k) == v}
    return out


def _finite(v: float) -> float | None:
    return None if math.isnan(v) or math.isinf(v) else v


def alert_to_dict(a: Alert) -> dict[str, Any]:
    d = {"labels": dict(a.labels), "annotations": dict(a.annotations), "state": a.state,
         "starts_at": a.starts_at, "ends_at": a.ends_at, "value": _finite(a.value), "generator_url": a.generator_url,
         "worst": _finite(a.worst), "unit": a.unit}
    if a.examples:
        d["examples"] = [{"trace_id": e.trace_id, "span_id": e.span_id, "value": e.value, "at": e.at, "url": e.url}
                         for e in a.examples]
    return d


def _is_hex(text: object, n: int) -> bool:
    return isinstance(text, str) and len(text) == n and all(c in "0123456789abcdef" for c in text)


def _examples(items) -> tuple:
    """Stored examples back; anything that is not what Tocsin writes is left out."""
    out = []
    for e in items or ():
        try:
            if _is_hex(e["trace_id"], 32) and _is_hex(e["span_id"], 16):
                out.append(TraceExample(e["trace_id"], e["span_id"], float(e["value"]), float(e["at"]),
                                        str(e.get("url") or "")))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(out)


def alert_from_dict(d: dict[str, Any]) -> Alert:
    def num(key):
        v = d.get(key)
        return float("nan") if v is None else float(v)
    return Alert(labels=dict(d["labels"]), annotations=dict(d.get("annotations", {})), state=d.get("state", "firing"),
                 starts_at=float(d.get("starts_at", 0)), ends_at=float(d.get("ends_at", 0)),
                 value=num("value"), generator_url=d.get("generator_url", ""), worst=num("worst"),
                 unit=d.get("unit", ""), examples=_examples(d.get("examples")))


def rfc3339(ts: float) -> str:
    """Alertmanager's time format; 0 is Go's zero time, which Alertmanager uses for 'not set'."""
    if not ts:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str | None) -> float:
    if not text or text.startswith("0001-01-01"):
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Integration(Protocol):
    name: str                 # "slack", "pagerduty", ...
    send_resolved: bool
    resend_while_firing: bool  # Alertmanager forwarding: resend every group_interval
    min_interval: float       # seconds between two messages on this integration (rate limit)

    def notify(self, n: Notification, state: dict[str, Any]) -> dict[str, Any] | None:
        """Deliver ``n``; return updates for the remembered state, raise NotifyError on failure."""
        ...


def title(n: Notification) -> str:
    name = n.group_labels.get("alertname") or n.common_labels.get("alertname") or \
        (n.alerts[0].name if n.alerts else "alert")
    if n.test:
        return f"Test notification from Tocsin ({n.receiver})"
    if n.firing:
        return f"[FIRING:{len(n.firing)}] {name}"
    return f"[RESOLVED] {name}"
