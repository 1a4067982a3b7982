"""Dedup stage: does this flush need a notification, given the notification log?
Alertmanager's rules (notify.go ``needsUpdate``): notify when an alert fires that
was not in the last notification, when everything notified has resolved, when
an alert notified as firing has resolved (if the integration sends resolves),
or when repeat_interval has passed."""
from __future__ import annotations

from .nflog import Entry


def needs_update(entry: Entry | None, firing: frozenset[str], resolved: frozenset[str], *, send_resolved: bool,
                 repeat_interval: float, now: float, resend_while_firing: bool = False) -> bool:
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    if resend_while_firing:
        return True
    return entry.timestamp + repeat_interval <= now


def notified_resolved(entry: Entry | None, resolved: frozenset[str]) -> frozenset[str]:
    """Resolved alerts worth telling about: those that were notified before."""
    if entry is None:
        return frozenset()
    return resolved & (entry.firing | entry.resolved)
