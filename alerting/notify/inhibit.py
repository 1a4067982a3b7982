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
        return bool(self.inhibited_by(target, active, first=True))

    def inhibited_by(self, target: Alert, active: Iterable[Alert], first: bool = False) -> list[str]:
        """Fingerprints of the firing alerts that inhibit ``target``."""
        out: list[str] = []
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
                    if first:
                        return [src.fingerprint]
                    if src.fingerprint not in out:
                        out.append(src.fingerprint)
        return out
