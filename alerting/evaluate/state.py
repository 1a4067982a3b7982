"""The alert state machine (Prometheus's inactive → pending → firing →
resolved), as a pure function over frozen values.

One ``AlertEntry`` per label set of a rule. Each evaluation observes, per label
set, one of: active (the condition holds), inactive, or HOLD (no decision:
too few requests, or no data with ``no_data: keep``)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

from alerting.model import fingerprint

PENDING, FIRING, INACTIVE = "pending", "firing", "inactive"

# Prometheus keeps sending a resolved alert for 15 minutes (rules/alerting.go,
# resolvedRetention), so a receiver that missed one send still sees it.
RESOLVED_RETENTION = 15 * 60.0


@dataclass(frozen=True)
class AlertEntry:
    labels: dict
    annotations: dict = field(default_factory=dict)
    state: str = PENDING
    active_at: float = 0.0
    fired_at: float = 0.0
    resolved_at: float = 0.0
    keep_firing_since: float = 0.0
    value: float = math.nan
    worst: float = math.nan        # the value at its worst while active (see ``worse``)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    def to_doc(self) -> dict:
        d = asdict(self)
        d["value"] = None if math.isnan(self.value) else self.value
        d["worst"] = None if math.isnan(self.worst) else self.worst
        return d

    @staticmethod
    def from_doc(d: dict) -> "AlertEntry":
        v, w = d.get("value"), d.get("worst")
        return AlertEntry(labels=dict(d["labels"]), annotations=dict(d.get("annotations") or {}),
                          state=d["state"], active_at=float(d.get("active_at", 0)),
                          fired_at=float(d.get("fired_at", 0)), resolved_at=float(d.get("resolved_at", 0)),
                          keep_firing_since=float(d.get("keep_firing_since", 0)),
                          value=math.nan if v is None else float(v), worst=math.nan if w is None else float(w))

    def structure(self) -> tuple:
        """What must survive a restart; value and annotations change every evaluation."""
        return (self.state, self.active_at, self.fired_at, self.resolved_at, self.keep_firing_since)


@dataclass(frozen=True)
class Observation:
    """One label set's outcome at one evaluation."""
    labels: dict
    annotations: dict
    value: float
    active: bool


def worse_of(a: float, b: float, worse: str = "higher") -> float:
    """The worse of two values, ignoring NaN: the higher, or the lower for rules
    that fire when a value drops (``expr: ... < 0.99``)."""
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return min(a, b) if worse == "lower" else max(a, b)


def step(entries: dict[str, AlertEntry], observed: dict[str, Observation], held: set[str], t: float,
         for_: float, keep_firing_for: float, worse: str = "higher") -> dict[str, AlertEntry]:
    """New entries (keyed by fingerprint) after an evaluation at ``t``.

    ``observed`` holds every label set with a decision; entries whose fingerprint
    is in ``held`` are left exactly as they are (no decision this time). A resolve
    carries the value and annotations of the evaluation that resolved it, when
    there was one (a latency rule below its threshold), and ``worst`` says how bad
    it got."""
    out: dict[str, AlertEntry] = {}
    for fp, obs in observed.items():
        if not obs.active:
            continue
        prev = entries.get(fp)
        if prev is not None and prev.state != INACTIVE:
            out[fp] = replace(prev, value=obs.value, annotations=obs.annotations, keep_firing_since=0.0,
                              worst=worse_of(prev.worst, obs.value, worse))
        else:
            out[fp] = AlertEntry(labels=obs.labels, annotations=obs.annotations, state=PENDING,
                                 active_at=t, value=obs.value, worst=obs.value)
    for fp, prev in entries.items():
        if fp in out:
            continue
        if fp in held:
            out[fp] = prev
            continue
        keep = False
        if prev.state == FIRING and keep_firing_for > 0:
            since = prev.keep_firing_since or t
            prev = replace(prev, keep_firing_since=since)
            keep = t - since < keep_firing_for
        if keep:
            obs = observed.get(fp)
            out[fp] = prev if obs is None else replace(prev, value=obs.value, annotations=obs.annotations)
            continue
        if prev.state == PENDING:
            continue                        # never fired: forget it
        if prev.state == INACTIVE:
            if t - prev.resolved_at <= RESOLVED_RETENTION:
                out[fp] = prev
            continue
        obs = observed.get(fp)
        if obs is None:   # the expression no longer returns it: the last value is all we know
            out[fp] = replace(prev, state=INACTIVE, resolved_at=t, keep_firing_since=0.0)
        else:
            out[fp] = replace(prev, state=INACTIVE, resolved_at=t, keep_firing_since=0.0, value=obs.value,
                              annotations=obs.annotations)
    for fp, e in out.items():
        if e.state == PENDING and fp not in held and t - e.active_at >= for_:
            out[fp] = replace(e, state=FIRING, fired_at=t)
    return out
