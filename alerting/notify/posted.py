"""Alerts posted to the Alertmanager API (``POST /api/v2/alerts``) of any replica
of a cluster, shared through the store so they reach the leader's pipeline: a
Prometheus may send to any replica behind the load balancer.

One document per alert (namespace ``posted_alerts``, key: its fingerprint) with
the alert and the time it resolves by itself. Writing one notifies every
replica (a PostgreSQL trigger, ``NOTIFY tocsin_kv``); each takes the documents
that changed (``changed``) into its notifier — the leader's routes, groups and
sends them, a follower's shows them in its API. Prometheus re-sends firing
alerts every minute, so a post that arrives during a failover is never lost
for longer than that."""
from __future__ import annotations

import threading

from alerting.model import Alert

from .types import alert_from_dict, alert_to_dict

NAMESPACE = "posted_alerts"
KEEP_RESOLVED = 3600.0   # a resolved alert's document is kept this long, then collected


class PostedAlerts:
    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, float]] = {}   # fingerprint -> (ends, updated) taken already

    def publish(self, alerts: list[tuple[Alert, float]], now: float) -> None:
        docs = {a.fingerprint: {"alert": alert_to_dict(a), "ends": ends, "updated": now} for a, ends in alerts}
        if docs:
            self._store.kv_put_many(NAMESPACE, docs)
        with self._lock:   # this replica applies them itself at once; not again from the store
            for fp, d in docs.items():
                self._seen[fp] = (d["ends"], d["updated"])

    def changed(self) -> list[tuple[Alert, float]]:
        """Documents written since the last call (by any replica)."""
        out = []
        docs = self._store.kv_list(NAMESPACE)
        with self._lock:
            for fp, d in docs.items():
                mark = (float(d["ends"]), float(d["updated"]))
                if self._seen.get(fp) == mark:
                    continue
                self._seen[fp] = mark
                out.append((alert_from_dict(d["alert"]), mark[0]))
            for fp in set(self._seen) - set(docs):
                del self._seen[fp]
        return sorted(out, key=lambda x: x[0].starts_at)

    def gc(self, now: float) -> None:
        for fp, d in self._store.kv_list(NAMESPACE).items():
            if float(d["ends"]) + KEEP_RESOLVED < now:
                self._store.kv_delete(NAMESPACE, fp)
