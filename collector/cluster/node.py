"""One replica's part in the cluster: the threads of membership, leadership,
shared changes and catalog sync, and the role switches they cause."""
from __future__ import annotations

import concurrent.futures
import logging
import socket
import threading
import time
import uuid

from collector.cluster.catalogsync import CatalogSync
from collector.cluster.gate import DataGate
from collector.cluster.leadership import Leadership
from collector.cluster.listen import SharedChanges
from collector.cluster.membership import Membership
from collector.cluster.timing import Timings
from collector.store.base import StoreError

log = logging.getLogger("tocsin.cluster")

PRUNE_EVERY = 600.0


def replica_id(cfg) -> str:
    return cfg.cluster.replica_id or socket.gethostname()


class ClusterNode:
    """Built before the service loads its series catalog (``CatalogSync`` marks
    where it starts reading new ones); ``start(role, address)`` once listening;
    ``stop()`` after the evaluator and notifier have stopped."""

    def __init__(self, cfg, store, catalog, metrics, now_s, version: str, slack_s: float = 0.0):
        self.replica = replica_id(cfg)
        self.instance = uuid.uuid4().hex
        self.timings = Timings.from_config(cfg.cluster)
        self.metrics = metrics
        self.cstore = store.cluster()
        self.changes = SharedChanges(self.cstore, self.replica, self.timings, metrics)
        self.changes.open()          # refuses a second live process with this replica id
        try:
            self.catalog_sync = CatalogSync(self.cstore, catalog, metrics)
            self.membership = Membership(self.cstore, self.replica, self.instance, "", version, self.timings,
                                         metrics, conditions=self._conditions)
            session = self.cstore.leader_session(self.replica, self.timings.idle, f"tocsin-leader {self.replica}")
            self.leadership = Leadership(session, self.timings, metrics, self.replica,
                                         on_elected=self._elected, on_deposed=self._deposed)
            self.gate = DataGate(self.cstore, self.catalog_sync, self.timings, now_s, slack_s)
        except Exception:
            self.changes.close()
            raise
        self.role = None
        self.conditions = dict         # () -> this replica's self-alert conditions (set by the service)
        self._stop = threading.Event()
        self._stop_leading = threading.Event()
        self._threads: list[threading.Thread] = []
        self._leader_thread: threading.Thread | None = None
        self._roles = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tocsin-cluster-role")

    def fence(self) -> int:
        return self.leadership.fence()

    @property
    def is_leader(self) -> bool:
        return self.leadership.is_leader

    def flushed(self, taken_at: float) -> None:
        self.membership.flushed(taken_at)

    def _conditions(self) -> dict:
        try:
            return self.conditions()
        except Exception:
            log.exception("cluster: collecting self-alert conditions failed")
            return {}

    # -- lifecycle -------------------------------------------------------------------
    def start(self, role, address: str) -> None:
        self.role = role
        self.membership.address = address
        self.changes.on_change = self._changed
        self.membership.beat()        # the row exists before this replica can lead
        for name, target in (("heartbeat", self.membership.run), ("listen", self.changes.run),
                             ("catalog", self._catalog_loop)):
            t = threading.Thread(target=target, args=(self._stop,), name=f"tocsin-cluster-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        self._leader_thread = threading.Thread(target=self.leadership.run, args=(self._stop_leading,),
                                               name="tocsin-cluster-leader", daemon=True)
        self._leader_thread.start()
        log.info("cluster: replica %s joined (heartbeat %gs, failover timeout %gs, visibility %gs)", self.replica,
                 self.timings.heartbeat, self.timings.failover, self.timings.visibility)

    def _catalog_loop(self, stop: threading.Event) -> None:
        pruned = time.monotonic()
        while not stop.wait(self.timings.catalog_every):
            try:
                self.catalog_sync.sync()
            except StoreError:
                pass
            except Exception:
                log.exception("cluster: reading new series failed")
            if self.is_leader and time.monotonic() - pruned > PRUNE_EVERY:
                pruned = time.monotonic()
                self.membership.prune()

    def _elected(self, epoch: int) -> None:
        self._roles.submit(self._run_role, "elected", epoch)

    def _deposed(self, why: str) -> None:
        self._roles.submit(self._run_role, "deposed", why)

    def _changed(self, what: set[str]) -> None:
        if self.role is not None:
            self.role.changed(what, self.is_leader)

    def _run_role(self, what: str, arg) -> None:
        try:
            getattr(self.role, what)(arg)
        except Exception as e:
            if what == "elected":
                # e.g. PostgreSQL answered the election but the pool is not back yet: give the
                # lock back; the next election (this replica or another) tries again
                log.warning("cluster: could not take up the leader's work, stepping down: %s", e)
                self.leadership.step_down(f"taking up the leader's work failed: {e}")
            else:
                log.exception("cluster: switching this replica's role (%s) failed", what)

    def resign(self) -> None:
        """Shutting down: take no further part in elections and hand leadership back
        (another replica takes over within a heartbeat). Role switches already
        queued run first; the service stops its evaluator and notifier after this."""
        self._stop_leading.set()
        if self._leader_thread is not None:
            self._leader_thread.join(self.timings.failover)
        self.leadership.release()
        self._roles.shutdown(wait=True)

    def stop(self) -> None:
        """Stop the threads and remove this replica's heartbeat row."""
        self.resign()
        self._stop.set()
        self.membership.wake()
        for t in self._threads:
            t.join(5)
        self.membership.leave()
        self.changes.close()
