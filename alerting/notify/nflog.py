"""The notification log: per group key, receiver and integration, what was last
notified (firing and resolved fingerprints, when) and what the integration keeps
about it (e.g. a Slack message ts). Written when a notification is queued, in
the same transaction as its outbox entry (``Notifier._flush``), so a restart never
queues the same notification twice nor loses one; persisted in the store
namespace ``nflog``. ``entry``/``with_state`` build entries, ``remember`` keeps
one in memory once the transaction that wrote it has committed."""
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

    def entry(self, key: str, firing: frozenset[str], resolved: frozenset[str], now: float) -> Entry:
        """The entry that logs a notification of ``firing``/``resolved`` now (not stored yet)."""
        old = self._entries.get(key)
        return Entry(firing, resolved, now, dict(old.state) if old else {})

    def with_state(self, key: str, updates: dict[str, Any]) -> Entry | None:
        """The entry with the integration's updates merged (not stored yet)."""
        old = self._entries.get(key)
        return None if old is None else replace(old, state={**old.state, **updates})

    def remember(self, key: str, e: Entry) -> None:
        with self._lock:
            self._entries[key] = e

    def log(self, key: str, firing: frozenset[str], resolved: frozenset[str], now: float) -> Entry:
        """Build, store and remember an entry (its own transaction)."""
        e = self.entry(key, firing, resolved, now)
        self._store.kv_put(NAMESPACE, key, e.to_store())
        self.remember(key, e)
        return e

    def gc(self, now: float) -> None:
        with self._lock:
            for k in [k for k, e in self._entries.items() if e.timestamp + self._retention < now]:
                self._store.kv_delete(NAMESPACE, k)
                del self._entries[k]
