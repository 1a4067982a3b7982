"""Shared documents changed: LISTEN ``tocsin_kv`` on a connection of its own
(a trigger notifies when a silence or a posted alert is written, by any replica),
and poll as a fallback — a notification sent while this replica was
reconnecting is lost. The same connection holds this replica's id lock."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from collector.store.base import StoreError

log = logging.getLogger("tocsin.cluster")

POLL = "poll"   # the payload passed on a fallback poll: anything may have changed


class SharedChanges:
    def __init__(self, cstore, replica: str, timings, metrics, on_change: Callable[[set[str]], None] | None = None):
        self.listener = cstore.listener(replica)
        self.replica, self.timings, self.metrics = replica, timings, metrics
        self.on_change = on_change
        self._down = False

    def open(self) -> None:
        """Take the replica id. StoreError when another live process has it."""
        if not self.listener.open():
            raise StoreError(f"cluster.replica_id {self.replica!r} is in use by another running Tocsin; give "
                             "each replica its own id (TOCSIN_CLUSTER__REPLICA_ID) and its own write-ahead log")

    def run(self, stop: threading.Event) -> None:
        next_poll = time.monotonic() + self.timings.poll_every
        while not stop.is_set():
            try:
                if self._down:
                    if not self.listener.open():
                        # our own id lock is still held by the dead session; it frees soon
                        raise StoreError("the replica id lock is still held")
                    self._down = False
                    log.info("cluster: listening for shared changes again")
                    self._changed({POLL})
                got = self.listener.wait(min(1.0, max(0.05, next_poll - time.monotonic())))
            except StoreError as e:
                self.metrics.cluster_pg_errors.labels("listen").inc()
                if not self._down:
                    log.warning("cluster: lost the connection that listens for shared changes: %s", e)
                self._down = True
                stop.wait(1.0)
                continue
            if got:
                self._changed(got)
            if time.monotonic() >= next_poll:
                next_poll = time.monotonic() + self.timings.poll_every
                self._changed({POLL})

    def _changed(self, what: set[str]) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(what)
        except StoreError as e:
            log.debug("cluster: reading shared changes failed: %s", e)
        except Exception:
            log.exception("cluster: applying shared changes failed")

    def close(self) -> None:
        self.listener.close()
