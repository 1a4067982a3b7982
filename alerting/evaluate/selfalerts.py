"""Built-in alerts about Tocsin itself: a pager must say when it cannot page
(docs/cluster.md, "Self-alerts"). Routed like any alert (``alertname=~"Tocsin.*"``,
``alertname="Watchdog"``).

Conditions are plain values gathered by the service (its write-ahead log, its
store, its deliveries) and, in a cluster, by every replica into its heartbeat
row, so the leader sees them all; the cluster adds replicas that stopped or fell
behind. ``SelfAlerts.step`` turns the conditions holding now into firing and
resolved alerts with a ``for`` of ``self_alerts.hold_for``; its state is a small
document the leader keeps in the store, so a new leader neither pages again nor
forgets a resolve.

``Watchdog`` always fires while Tocsin can page: route it (with a short
``repeat_interval``) to a dead man's switch outside Tocsin, which pages when it
stops arriving — the whole cluster down, PostgreSQL unreachable for every
replica, or no leader.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from alerting.model import Alert, fingerprint

NAMESPACE = "self_alerts"
DOC_KEY = "state"

WATCHDOG = "Watchdog"
SUMMARIES = {
    WATCHDOG: "Tocsin can page. This alert always fires; a dead man's switch outside Tocsin pages when it stops.",
}


@dataclass(frozen=True)
class Condition:
    """Something wrong now. ``labels`` identify it (replica, receiver, ...)."""
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    def key(self) -> str:
        return fingerprint({"alertname": self.name, **self.labels})


class SelfAlerts:
    def __init__(self, hold_for: float, labels: dict[str, str], watchdog: bool = True, external_url: str = ""):
        self.hold_for, self.labels, self.watchdog, self.external_url = hold_for, dict(labels), watchdog, external_url
        # key -> {"labels", "summary", "since", "fired_at"}: conditions holding, pending or firing
        self.active: dict[str, dict] = {}

    def _labels(self, c: Condition) -> dict[str, str]:
        out = {**self.labels, **c.labels, "alertname": c.name}
        if c.name == WATCHDOG:
            out["severity"] = "none"
        return out

    def step(self, now: float, conditions: list[Condition]) -> tuple[list[Alert], bool]:
        """(alerts for the notifier — firing, and resolved once —, whether the
        state changed and should be saved)."""
        if self.watchdog:
            conditions = [*conditions, Condition(WATCHDOG, {}, SUMMARIES[WATCHDOG])]
        holding = {c.key(): c for c in conditions}
        changed = False
        out = []
        for key, c in holding.items():
            st = self.active.get(key)
            if st is None:
                st = self.active[key] = {"labels": self._labels(c), "summary": c.summary, "since": now,
                                         "fired_at": 0.0}
                changed = True
            st["summary"] = c.summary or st["summary"]
            hold = 0.0 if c.name == WATCHDOG else self.hold_for
            if not st["fired_at"] and now - st["since"] >= hold:
                st["fired_at"] = now
                changed = True
            if st["fired_at"]:
                out.append(Alert(dict(st["labels"]), {"summary": st["summary"]}, "firing", st["fired_at"],
                                 generator_url=self.external_url))
        for key in [k for k in self.active if k not in holding]:
            st = self.active.pop(key)
            changed = True
            if st["fired_at"]:
                out.append(Alert(dict(st["labels"]), {"summary": st["summary"]}, "resolved", st["fired_at"], now,
                                 generator_url=self.external_url))
        return out, changed

    def to_doc(self) -> dict:
        return {"active": self.active}

    def adopt(self, doc: dict | None) -> None:
        self.active = {k: dict(v) for k, v in ((doc or {}).get("active") or {}).items()}
