"""Aggregation groups: alerts of one route with equal group labels are sent
together. Timings follow Alertmanager: the first flush after ``group_wait`` (at
once if the alert has been firing longer than that), then one every
``group_interval``; the dedup stage decides whether a flush sends anything."""
from __future__ import annotations

import json
from dataclasses import dataclass

from alerting.model import Alert

from .routing import RouteNode


def group_key(route: RouteNode, labels: dict[str, str]) -> str:
    return f"{route.key}:{json.dumps(dict(sorted(labels.items())), separators=(',', ':'))}"


@dataclass(frozen=True)
class GroupSnapshot:
    """What one flush works on."""

    key: str
    route: RouteNode
    labels: dict[str, str]
    alerts: tuple[Alert, ...]


class AggregationGroup:
    def __init__(self, route: RouteNode, labels: dict[str, str], now: float):
        self.route = route
        self.labels = labels
        self.key = group_key(route, labels)
        self.alerts: dict[str, Alert] = {}
        self.next_flush = now + route.group_wait
        self.flushed = False

    def insert(self, alert: Alert, now: float) -> None:
        self.alerts[alert.fingerprint] = alert
        # An alert that has waited longer than group_wait already (e.g. after a
        # restart) should not wait again.
        if not self.flushed and alert.starts_at and alert.starts_at + self.route.group_wait < now:
            self.next_flush = min(self.next_flush, now)

    def due(self, now: float) -> bool:
        return bool(self.alerts) and now >= self.next_flush

    def snapshot(self) -> GroupSnapshot:
        return GroupSnapshot(self.key, self.route, dict(self.labels), tuple(self.alerts.values()))

    def flushed_at(self, snap: GroupSnapshot, now: float) -> None:
        """Forget resolved alerts that were part of the flush and did not change since."""
        self.flushed = True
        self.next_flush = now + self.route.group_interval
        for a in snap.alerts:
            if a.resolved and self.alerts.get(a.fingerprint) == a:
                del self.alerts[a.fingerprint]

    def empty(self) -> bool:
        return not self.alerts


class Dispatcher:
    """Routes alerts into aggregation groups and hands out the groups that are due."""

    def __init__(self, tree: RouteNode):
        self.tree = tree
        self.groups: dict[str, AggregationGroup] = {}

    def insert(self, alert: Alert, now: float) -> None:
        for route in self.tree.match(alert.labels):
            labels = route.group_labels(alert.labels)
            key = group_key(route, labels)
            g = self.groups.get(key)
            if g is None:
                g = self.groups[key] = AggregationGroup(route, labels, now)
            g.insert(alert, now)

    def due(self, now: float) -> list[AggregationGroup]:
        return sorted((g for g in self.groups.values() if g.due(now)), key=lambda g: (g.next_flush, g.key))

    def done(self, g: AggregationGroup, snap: GroupSnapshot, now: float) -> None:
        g.flushed_at(snap, now)
        if g.empty():
            self.groups.pop(g.key, None)
