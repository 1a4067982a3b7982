"""Notifications queued but not yet delivered, persisted in the store namespace
``outbox`` so a restart still delivers them. Entries of one lane (a receiver's
integration, i.e. one channel or service) are delivered in the order queued.

Writes go through the caller's transaction: ``new`` builds an entry that the
notifier stores together with its notification-log entry, ``remember``/``forget``
update this in-memory view once that transaction has committed."""
from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Any

from .types import Notification

NAMESPACE = "outbox"


@dataclass(frozen=True)
class Pending:
    seq: int
    notification: Notification
    log_key: str
    attempts: int
    next_attempt: float
    deadline: float

    @property
    def key(self) -> str:
        return f"{self.seq:015d}"

    @property
    def lane(self) -> str:
        return f"{self.notification.receiver}/{self.notification.integration}"

    def to_store(self) -> dict[str, Any]:
        return {"seq": self.seq, "notification": self.notification.to_dict(), "log_key": self.log_key,
                "attempts": self.attempts, "next_attempt": self.next_attempt, "deadline": self.deadline}

    @staticmethod
    def from_store(d: dict[str, Any]) -> "Pending":
        return Pending(int(d["seq"]), Notification.from_dict(d["notification"]), d["log_key"], int(d["attempts"]),
                       float(d["next_attempt"]), float(d["deadline"]))


class Outbox:
    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self._items = {p.seq: p for p in (Pending.from_store(v) for v in store.kv_list(NAMESPACE).values())}
        self._next_seq = max(self._items, default=0) + 1

    def new(self, n: Notification, log_key: str, now: float, deadline: float) -> Pending:
        """A new entry with the next sequence number (not stored yet)."""
        with self._lock:
            p = Pending(self._next_seq, n, log_key, 0, now, deadline)
            self._next_seq += 1
            return p

    def remember(self, p: Pending) -> None:
        with self._lock:
            self._items[p.seq] = p
            self._next_seq = max(self._next_seq, p.seq + 1)

    def forget(self, p: Pending) -> None:
        with self._lock:
            self._items.pop(p.seq, None)

    def add(self, n: Notification, log_key: str, now: float, deadline: float) -> Pending:
        """Build, store and remember an entry (its own transaction)."""
        p = self.new(n, log_key, now, deadline)
        self._store.kv_put(NAMESPACE, p.key, p.to_store())
        self.remember(p)
        return p

    def lanes(self) -> dict[str, list[Pending]]:
        """Pending notifications by lane, oldest first."""
        out: dict[str, list[Pending]] = {}
        for p in sorted(list(self._items.values()), key=lambda p: p.seq):
            out.setdefault(p.lane, []).append(p)
        return out

    def failed(self, p: Pending, next_attempt: float) -> Pending:
        with self._lock:
            q = replace(p, attempts=p.attempts + 1, next_attempt=next_attempt)
            self._store.kv_put(NAMESPACE, q.key, q.to_store())
            self._items[q.seq] = q
            return q

    def remove(self, p: Pending) -> None:
        with self._lock:
            self._store.kv_delete(NAMESPACE, p.key)
            self._items.pop(p.seq, None)

    def __len__(self) -> int:
        return len(self._items)
