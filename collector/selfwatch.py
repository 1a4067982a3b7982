"""What Tocsin knows is wrong with itself, turned into alerts
(``alerting/evaluate/selfalerts.py``; docs/cluster.md, "Self-alerts").

Every process gathers its own conditions — its write-ahead log near its bound,
its store not accepting writes, notifications to a receiver failing — and, in a
cluster, publishes them in its heartbeat row. The process that pages (a single
process, or the cluster's leader) adds the cluster's — replicas that stopped
heartbeating, replicas whose flushes lag — and hands the alerts to its notifier
like any other, with the Watchdog.

The pipeline cannot report its own absence. A replica that sees no leader for
longer than the failover timeout (while PostgreSQL answers), or cannot reach
PostgreSQL for that long, sends ``TocsinNoLeader`` / ``TocsinStoreUnavailable``
itself, straight to the receivers its routes name (``Notifier.send_direct``):
one follower per leaderless episode (a claim in the store), every replica for
an unreachable PostgreSQL (nothing to coordinate through; PagerDuty's dedup_key
makes them one incident). The Watchdog stopping covers the rest.
"""
from __future__ import annotations

import logging
import time

from alerting.evaluate.selfalerts import DOC_KEY, NAMESPACE, Condition, SelfAlerts
from collector.store.base import Fenced, StoreError, apply_documents

log = logging.getLogger("tocsin.selfalerts")

FAILING_ATTEMPTS = 3      # a receiver's notifications are "failing" after this many failed attempts in a row


class SelfWatch:
    def __init__(self, service):
        self.service = service
        cfg = service.config.self_alerts
        self.enabled = cfg.enabled
        self.alerts = SelfAlerts(cfg.hold_for, cfg.labels, cfg.watchdog, service.config.api.external_url)
        self.replica = service.cluster.replica if service.cluster is not None else ""
        self._direct: dict[str, tuple[float, object]] = {}   # condition -> (since, alert sent directly)
        self._since: dict[str, float] = {}

    # -- conditions ------------------------------------------------------------------
    def local(self) -> list[Condition]:
        """This process's conditions."""
        s = self.service
        out = []
        who = {"replica": self.replica} if self.replica else {}
        limit = s.config.storage.wal_max_size
        if s.wal is not None and limit and s.wal.size_bytes >= s.config.self_alerts.wal_full_ratio * limit:
            out.append(Condition("TocsinWALNearFull", who,
                                 f"the write-ahead log holds {s.wal.size_bytes >> 20} MiB of its "
                                 f"{limit >> 20} MiB bound (storage.wal_max_size): at the bound ingest is refused"))
        if s.store_problem is not None:
            since, what = s.store_problem
            out.append(Condition("TocsinStoreUnavailable", who,
                                 f"the store has not accepted writes for {time.time() - since:.0f} s: {what}"))
        deliverer = getattr(s.notifier, "deliverer", None)
        for lane, (since, attempts, reason) in list(getattr(deliverer, "failing", {}).items()):
            if attempts >= FAILING_ATTEMPTS:
                receiver, _, integration = lane.partition("/")
                out.append(Condition("TocsinNotificationsFailing", {"receiver": receiver, "integration": integration},
                                     f"{attempts} attempts in a row to send to {lane} failed ({reason})"))
        return out

    def published(self) -> dict:
        """This replica's conditions for its heartbeat row."""
        if not self.enabled:
            return {}
        return {"self_alerts": [{"name": c.name, "labels": c.labels, "summary": c.summary} for c in self.local()]}

    def cluster(self) -> list[Condition]:
        """The leader's view: every live replica's published conditions, and replicas
        that stopped or lag."""
        node = self.service.cluster
        m = node.membership
        out = []
        for r in m.rows:
            if r.replica == node.replica:
                continue                      # our own are fresher: self.local()
            if r.heartbeat_age >= node.timings.failover:
                out.append(Condition("TocsinReplicaDown", {"replica": r.replica},
                                     f"replica {r.replica} ({r.address}) has not written a heartbeat for "
                                     f"{r.heartbeat_age:.0f} s: killed, frozen or cut off from PostgreSQL; "
                                     "what it acknowledged and did not flush waits in its write-ahead log"))
                continue
            for c in (r.conditions or {}).get("self_alerts", []):
                out.append(Condition(c["name"], dict(c.get("labels") or {}), c.get("summary", "")))
            if r.flush_lag is not None and r.flush_lag > max(node.timings.evaluation_wait, 2 * node.timings.visibility):
                out.append(Condition("TocsinReplicaBehind", {"replica": r.replica},
                                     f"replica {r.replica} has not flushed for {r.flush_lag:.0f} s: rule "
                                     "evaluations wait for it, then are skipped"))
        return out

    # -- the loop ------------------------------------------------------------------
    def adopt(self) -> None:
        """A new leader: the state its predecessor saved."""
        try:
            self.alerts.adopt(self.service.store.kv_get(NAMESPACE, DOC_KEY))
        except StoreError as e:
            log.warning("self-alerts: could not read the saved state: %s", e)

    def tick(self) -> None:
        if not self.enabled:
            return
        s = self.service
        node = s.cluster
        if node is not None:
            leading = node.is_leader
            self._last_resort(node, leading)     # a leader resolves what it sent directly as a follower
            if not leading:
                return
        conditions = self.local() + (self.cluster() if node is not None else [])
        alerts, changed = self.alerts.step(s.now_s(), conditions)
        if changed:
            try:
                apply_documents(s.store, {NAMESPACE: {DOC_KEY: self.alerts.to_doc()}}, {},
                                fence=node.fence() if node is not None else None)
            except Fenced:
                return
            except StoreError as e:
                log.debug("self-alerts: state not saved: %s", e)
        if alerts:
            s.notifier.submit(alerts)

    def _last_resort(self, node, leading: bool) -> None:
        """A follower: conditions the leader cannot report because they are its absence."""
        m = node.membership
        now = time.monotonic()
        holding: dict[str, Condition] = {}
        if leading:
            pass
        elif m.error is not None:
            holding["store"] = Condition("TocsinStoreUnavailable", {"replica": self.replica},
                                         f"replica {self.replica} cannot reach PostgreSQL: {m.error}")
        elif m.leader_row is not None and not any(r.replica == m.leader_row.replica and
                                                  r.heartbeat_age < node.timings.failover for r in m.rows):
            holding["leader"] = Condition("TocsinNoLeader", {},
                                          f"no replica has led the cluster for more than "
                                          f"{node.timings.failover:g} s (cluster.failover_timeout): rules are not "
                                          "evaluated and nothing is sent; check PgBouncer (the leader's connection "
                                          "must bypass transaction pooling) and the replicas' logs")
        for key in list(self._since):
            if key not in holding:
                self._since.pop(key)
        for key in holding:
            self._since.setdefault(key, now)
        from alerting.model import Alert

        for key, c in holding.items():
            if key in self._direct or now - self._since[key] < node.timings.failover:
                continue
            if key == "leader" and not self._claim_episode(node, m.leader_row.epoch):
                continue                     # another follower reports this episode
            labels = {**self.alerts.labels, **c.labels, "alertname": c.name}
            alert = Alert(labels, {"summary": c.summary}, "firing", time.time())
            self.service.notifier.send_direct([alert])
            self._direct[key] = (now, alert)
        for key in [k for k in self._direct if k not in holding]:
            _, alert = self._direct.pop(key)
            from dataclasses import replace

            self.service.notifier.send_direct([replace(alert, state="resolved", ends_at=time.time())])

    def _claim_episode(self, node, epoch: int) -> bool:
        try:
            return self.service.store.kv_put_new("self_alerts_direct", f"no_leader:{epoch}",
                                                 {"replica": self.replica, "at": time.time()})
        except (StoreError, AttributeError):
            return True
