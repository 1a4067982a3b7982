"""Transactions of the notification pipeline: what is queued, sent and recorded
changes the notification log and the outbox together, or not at all.

- ``apply(store, puts, deletes, fence)``: one transaction of document writes
  (``Store.kv_apply``), refused with ``Fenced`` when ``fence`` is not the
  cluster's current leader epoch.
- Claims, around each send: ``LocalClaims`` for one process (nobody else sends),
  ``FencedClaims`` for a cluster leader: the send happens inside a transaction
  that checked the epoch and locked the outbox entry (``FOR UPDATE SKIP
  LOCKED``), and the outcome is recorded in that same transaction. Another
  replica can never send the same entry meanwhile; if this process dies after
  the receiver's 2xx and before the commit, the entry is sent again by the next
  leader — the one duplicate window, one HTTP call wide (docs/cluster.md).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from collector.store.base import apply_documents

from .outbox import NAMESPACE as OUTBOX, Pending

Puts = dict[str, dict[str, dict[str, Any]]]
Deletes = dict[str, list[str]]


def apply(store, puts: Puts, deletes: Deletes, fence: int | None = None) -> None:
    apply_documents(store, puts, deletes, fence)


@dataclass
class Claim:
    """One outbox entry held for a send. ``state``: claimed | busy (another
    transaction holds it) | gone (delivered or dropped by someone else).
    ``record`` writes the outcome; ``after`` runs once it has committed."""
    state: str
    pending: Pending | None
    _record: Callable[[Puts, Deletes], None]
    after: list[Callable[[], None]] = field(default_factory=list)

    def record(self, puts: Puts, deletes: Deletes, then: Callable[[], None] | None = None) -> None:
        self._record(puts, deletes)
        if then is not None:
            self.after.append(then)


class LocalClaims:
    """One process: every entry is ours; each outcome is its own transaction."""

    def __init__(self, store):
        self.store = store

    @contextlib.contextmanager
    def claim(self, p: Pending):
        c = Claim("claimed", p, lambda puts, deletes: apply(self.store, puts, deletes))
        yield c
        for fn in c.after:
            fn()


class FencedClaims:
    """A cluster leader: claim, send and record in one fenced transaction
    (``Store.kv_claim``). ``fence()`` gives the leader's epoch or raises ``Fenced``."""

    def __init__(self, store, fence: Callable[[], int], hold_s: float = 30.0):
        self.store, self.fence, self.hold_s = store, fence, hold_s

    @contextlib.contextmanager
    def claim(self, p: Pending):
        with self.store.kv_claim(OUTBOX, p.key, self.fence(), self.hold_s) as held:
            stored = Pending.from_store(held.value) if held.value is not None else None
            c = Claim(held.state, stored, held.apply)
            yield c
        for fn in c.after:   # committed
            fn()
