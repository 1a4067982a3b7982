"""Membership: each replica's heartbeat row in ``cluster_replicas``.

Written every heartbeat interval, and at once after each stored flush: the row
carries the time up to which everything this replica acknowledged is in the
store (its flush watermark), converted to PostgreSQL's clock by the SQL, so the
leader's rules can wait for every live replica (``gate.DataGate``). It also
carries the replica's self-alert conditions, which the leader turns into alerts.
Reading the table gives the live replicas, the leader row and the status page.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from collector.store.base import StoreError

log = logging.getLogger("tocsin.cluster")

FORGET_AFTER = 3600.0   # rows of replicas gone this long (killed, never restarted) are deleted


class Membership:
    def __init__(self, cstore, replica: str, instance: str, address: str, version: str, timings, metrics,
                 conditions: Callable[[], dict] = dict, clock: Callable[[], float] = time.time):
        self.cstore, self.replica, self.instance = cstore, replica, instance
        self.address, self.version, self.timings, self.metrics = address, version, timings, metrics
        self.conditions, self.clock = conditions, clock
        self._flushed: float | None = None     # client clock: the take of the last stored flush
        self._wake = threading.Event()
        self.rows: list = []                   # cluster_replicas, last read
        self.leader_row = None
        self.read_at = 0.0
        self.error: str | None = None          # the last heartbeat's failure, None when it worked
        self._seen_epoch: int | None = None

    def flushed(self, taken_at: float) -> None:
        """Everything acknowledged before ``taken_at`` (service clock, seconds) is stored."""
        if self._flushed is None or taken_at > self._flushed:
            self._flushed = taken_at
        self._wake.set()

    def beat(self, read: bool = True) -> None:
        flushed = self._flushed
        age = None if flushed is None else max(0.0, self.clock() - flushed)
        try:
            self.cstore.heartbeat(self.replica, self.instance, age, self.address, self.version, self.conditions())
            if read:
                self.rows = self.cstore.replicas()
                self.leader_row = self.cstore.leader()
                self.read_at = time.time()
                self._account()
        except StoreError as e:
            self.metrics.cluster_pg_errors.labels("heartbeat").inc()
            if self.error is None:
                log.warning("cluster: heartbeat failed: %s", e)
            self.error = str(e)
            return
        if self.error is not None:
            log.info("cluster: heartbeats are written again")
        self.error = None

    def _account(self) -> None:
        live = self.live()
        self.metrics.cluster_replicas.set(len(live))
        for r in self.rows:
            if r.flush_lag is not None:
                self.metrics.cluster_flush_lag.labels(r.replica).set(r.flush_lag)
        epoch = self.leader_row.epoch if self.leader_row else None
        if epoch is not None:
            if self._seen_epoch is not None and epoch != self._seen_epoch:
                self.metrics.cluster_leader_changes.inc()
            self._seen_epoch = epoch
            self.metrics.cluster_epoch.set(epoch)

    def live(self) -> list:
        return [r for r in self.rows if r.heartbeat_age < self.timings.failover]

    def run(self, stop: threading.Event) -> None:
        next_full = 0.0
        while not stop.is_set():
            self._wake.clear()     # before the write: a flush stored meanwhile wakes the next one
            full = time.monotonic() >= next_full
            self.beat(read=full)
            if full:
                next_full = time.monotonic() + self.timings.heartbeat
            self._wake.wait(max(0.0, next_full - time.monotonic()))

    def wake(self) -> None:
        self._wake.set()

    def prune(self) -> None:
        try:
            self.cstore.prune(FORGET_AFTER)
        except StoreError:
            pass

    def leave(self) -> None:
        """A clean shutdown: the row goes (a replica that left is not 'down')."""
        try:
            self.cstore.leave(self.replica, self.instance)
        except StoreError as e:
            log.warning("cluster: could not remove this replica's heartbeat row: %s", e)
