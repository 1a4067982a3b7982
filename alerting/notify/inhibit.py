"""Inhibition: a firing source alert mutes target alerts that have the same
values for the ``equal`` labels (a label missing on both sides counts as equal,
as in Alertmanager). An alert never inhibits itself."""
from __future__ import annotations

from collections.abc import Iterable

from alerting.model import Alert

from .config import InhibitRule
from .matchers import matches_all


class Inhibitor:
    def __init__(self, rules: list[InhibitRule]):
        self.rules = rules

    def muted(self, target: Alert, active: Iterable[Alert]) -> bool:
        active = list(active)
        for rule in self.rules:
            if not matches_all(rule.target_matchers, target.labels):
                continue
            for src in active:
                if src.resolved or src.fingerprint == target.fingerprint:
                    continue
                if not matches_all(rule.source_matchers, src.labels):
                    continue
                if all(src.labels.get(k, "") == target.labels.get(k, "") for k in rule.equal):
                    return True
        return False
