"""Leadership: who evaluates rules and sends notifications (docs/cluster.md).

A replica is leader while it holds a PostgreSQL session advisory lock on a
connection of its own (``LeaderSession``) and has confirmed it within its lease
(``Timings.lease``). Taking the lock is followed by a transaction that increments
the epoch: ``fence()`` hands it to every write of the alerting side, which the
store checks in the same transaction (``Fenced`` when another replica took over
meanwhile). A lock is not a lease — a leader may stall after any check — which is
why the epoch is checked by the database, not here.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from collector.store.base import Fenced, StoreError

log = logging.getLogger("tocsin.cluster")


class Leadership:
    def __init__(self, session, timings, metrics, replica: str,
                 on_elected: Callable[[int], None], on_deposed: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic):
        self.session, self.timings, self.metrics, self.replica = session, timings, metrics, replica
        self.on_elected, self.on_deposed, self.clock = on_elected, on_deposed, clock
        self.epoch: int | None = None
        self._lease_until = 0.0
        self._lock = threading.Lock()
        self._unreachable = False
        self.elected_at: float | None = None   # time.time() of the last takeover by this replica

    # -- what other parts ask ------------------------------------------------------
    def fence(self) -> int:
        """The epoch to fence a write with; ``Fenced`` when this replica is not the
        leader or its lease ran out (it stalled: the store would refuse anyway)."""
        epoch = self.epoch
        if epoch is None or self.clock() >= self._lease_until:
            raise Fenced(f"replica {self.replica} is not the leader")
        return epoch

    @property
    def is_leader(self) -> bool:
        try:
            self.fence()
            return True
        except Fenced:
            return False

    # -- the loop ------------------------------------------------------------------
    def step(self) -> None:
        with self._lock:
            if self.epoch is not None:
                self._confirm()
            else:
                self._try_acquire()

    def _confirm(self) -> None:
        t0 = self.clock()
        if t0 >= self._lease_until:
            self._depose("its lease ran out (the process stalled, or PostgreSQL did not answer in time)")
            return
        try:
            ok = self.session.confirm(self.epoch)
        except StoreError as e:
            self.metrics.cluster_pg_errors.labels("leadership").inc()
            self._depose(f"the lock's connection failed: {e}")
            return
        if not ok:
            self._depose("another replica took over")
            return
        # From t0: the server saw the query after t0, so it cannot free the lock before t0 + idle.
        self._lease_until = t0 + self.timings.lease

    def _try_acquire(self) -> None:
        t0 = self.clock()
        try:
            epoch = self.session.try_acquire()
        except StoreError as e:
            self.metrics.cluster_pg_errors.labels("leadership").inc()
            if not self._unreachable:
                log.warning("cluster: cannot take part in the leader election: %s", e)
            self._unreachable = True
            return
        if self._unreachable:
            log.info("cluster: PostgreSQL answers the leader election again")
        self._unreachable = False
        if epoch is None:
            return
        self.epoch = epoch
        self._lease_until = t0 + self.timings.lease
        self.elected_at = time.time()
        self.metrics.cluster_leader.set(1)
        self.metrics.cluster_epoch.set(epoch)
        log.info("cluster: replica %s is the leader (epoch %d): it evaluates rules and sends notifications",
                 self.replica, epoch)
        self.on_elected(epoch)

    def _depose(self, why: str) -> None:
        epoch, self.epoch = self.epoch, None
        self._lease_until = 0.0
        self.session.close()     # whatever the session still holds is released with it
        self.metrics.cluster_leader.set(0)
        log.warning("cluster: replica %s is no longer the leader (epoch %s): %s", self.replica, epoch, why)
        self.on_deposed(why)

    def step_down(self, why: str) -> None:
        with self._lock:
            if self.epoch is not None:
                self._depose(why)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:   # never let the election thread die
                log.exception("cluster: leadership step failed")
            stop.wait(self.timings.confirm_every if self.epoch is not None else self.timings.heartbeat)

    def release(self) -> None:
        """A clean shutdown: give the lock back now, so another replica takes over
        within one heartbeat instead of a failover timeout."""
        with self._lock:
            was = self.epoch
            self.epoch = None
            self._lease_until = 0.0
            self.session.release()
            if was is not None:
                self.metrics.cluster_leader.set(0)
                log.info("cluster: replica %s handed leadership back (epoch %d)", self.replica, was)
