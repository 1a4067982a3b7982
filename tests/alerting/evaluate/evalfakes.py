"""Plain-data stand-ins for the evaluator's collaborators (not mocks of our code:
the store protocol's kv_* methods over a dict, a scripted query function)."""
from __future__ import annotations

import math


class DictStore:
    def __init__(self):
        self.kv: dict[str, dict[str, dict]] = {}
        self.writes = 0

    def kv_put(self, namespace, key, value):
        self.writes += 1
        self.kv.setdefault(namespace, {})[key] = dict(value)

    def kv_put_many(self, namespace, items):
        for k, v in items.items():
            self.kv_put(namespace, k, v)

    def kv_get(self, namespace, key):
        return self.kv.get(namespace, {}).get(key)

    def kv_list(self, namespace):
        return dict(self.kv.get(namespace, {}))

    def kv_delete(self, namespace, key):
        self.kv.get(namespace, {}).pop(key, None)


class LatencyScript:
    """p95 (seconds) and request count per evaluation time, for one series.
    ``None`` for a time means no data at all (the query returns nothing)."""

    def __init__(self, labels: dict, points: dict[float, tuple[float, float] | None]):
        self.labels = labels
        self.points = points
        self.calls: list[tuple[str, float]] = []

    def __call__(self, expr: str, t: float):
        self.calls.append((expr, t))
        p = self.points.get(t)
        if p is None:
            return []
        p95, count = p
        if expr.startswith("histogram_quantile"):
            return [(dict(self.labels), math.nan if count == 0 else p95)]
        if "increase(" in expr:
            return [(dict(self.labels), float(count))]
        raise AssertionError(f"unexpected query {expr}")


class Recorder:
    def __init__(self):
        self.samples = []

    def __call__(self, metric, labels, t, value):
        self.samples.append((metric, dict(labels), t, value))


class Notifications:
    def __init__(self):
        self.batches = []

    def __call__(self, alerts):
        self.batches.append(list(alerts))
