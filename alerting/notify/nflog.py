"""The notification log: per group key, receiver and integration, what was last
notified (firing and resolved fingerprints, when) and what the integration keeps
about it (e.g. a Slack message ts). Written when a notification is queued, so a
restart never queues the same notification twice; persisted in the store
namespace ``nflog``."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Any

NAMESPACE = "nflog"


@dataclass(frozen=True)
class Entry:
    firing: frozenset[str]
    resolved: frozenset[str]
    timestamp: float
    state: dict[str, Any] = field(default_factory=dict)   # integration's own (slack ts, channel)

    def to_store(self) -> dict[str, Any]:
        return {"firing": sorted(self.firing), "resolved": sorted(self.resolved), "timestamp": self.timestamp,
                "state": dict(self.state)}

    @staticmethod
    def from_store(d: dict[str, Any]) -> "Entry":
        return Entry(frozenset(d.get("firing", [])), frozenset(d.get("resolved", [])), float(d["timestamp"]),
                     dict(d.get("state") or {}))


def log_key(receiver: str, integration: str, group_key: str) -> str:
    return f"{receiver}/{integration}/{group_key}"


class NotificationLog:
    def __init__(self, store, retention: float = 5 * 86400):
        self._store, self._retention = store, retention
        self._lock = threading.Lock()
        self._entries = {k: Entry.from_store(v) for k, v in store.kv_list(NAMESPACE).items()}

    def get(self, key: str) -> Entry | None:
        return self._entries.get(key)

    def log(self, key: str, firing: frozenset[str], resolved: frozenset[str], now: float) -> Entry:
        with self._lock:
            old = self._entries.get(key)
            e = Entry(firing, resolved, now, dict(old.state) if old else {})
            self._store.kv_put(NAMESPACE, key, e.to_store())
            self._entries[key] = e
            return e

    def update_state(self, key: str, updates: dict[str, Any]) -> None:
        with self._lock:
            old = self._entries.get(key)
            if old is None:
                return
            e = replace(old, state={**old.state, **updates})
            self._store.kv_put(NAMESPACE, key, e.to_store())
            self._entries[key] = e

    def gc(self, now: float) -> None:
        with self._lock:
            for k in [k for k, e in self._entries.items() if e.timestamp + self._retention < now]:
                self._store.kv_delete(NAMESPACE, k)
                del self._entries[k]
