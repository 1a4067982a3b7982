"""What a replica does when it becomes or stops being the leader, and when
shared documents change. The glue between the cluster and ``collector.service``:

- elected: the evaluator takes the alert state from the store (``for`` timers
  go on, firing alerts are not paged again), a fresh notifier reads the
  notification log, the outbox and silences (what the former leader queued and
  did not send is sent, resolves included), both start;
- deposed: both stop (a write they still try is refused by the fence);
- changed: silences and posted alerts are read again; a follower also mirrors
  the leader's alert state and rule health for its API.
"""
from __future__ import annotations

import logging

from collector.cluster.listen import POLL

log = logging.getLogger("tocsin.cluster")


class ServiceRole:
    def __init__(self, service):
        self.service = service

    def elected(self, epoch: int) -> None:
        s = self.service
        s.evaluator.adopt_stored_state()
        s.selfwatch.adopt()
        notifier = s.make_notifier(s.config.notify)    # reads nflog, outbox and silences as stored now
        notifier.sync_posted()
        old, s.notifier = s.notifier, notifier
        old.stop()
        notifier.start()
        s._notifier_running = True
        s.evaluator.start()
        log.info("cluster: evaluating %d rule groups and sending notifications (epoch %d)",
                 len(s.evaluator.groups()), epoch)

    def deposed(self, why: str) -> None:
        s = self.service
        s.evaluator.stop()
        s._notifier_running = False
        s.notifier.stop()

    def changed(self, what: set[str], leader: bool) -> None:
        s = self.service
        n = s.notifier
        if "silences" in what or POLL in what:
            n.silences.reload()
        if "posted_alerts" in what or POLL in what:
            n.sync_posted()
        if POLL in what and not leader:
            s.evaluator.sync_from_store()
            n.mirror(s.evaluator.firing_alerts())
