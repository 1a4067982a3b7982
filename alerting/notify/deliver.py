"""Send-and-retry stage: delivers the outbox, lane by lane in the order queued.

The only place with retries (and their metrics): exponential backoff with
jitter, the server's Retry-After honoured, a lane waits behind its oldest
notification so messages arrive in order, and a per-lane minimum interval keeps
to rate limits such as Slack's one message per second per channel."""
from __future__ import annotations

import logging
import random
import threading
from dataclasses import replace

from alerting.model import format_labels

from .claim import LocalClaims
from .nflog import NAMESPACE as NFLOG, NotificationLog
from .outbox import NAMESPACE as OUTBOX, Outbox, Pending
from .retry import RetryPolicy
from .types import Integration, NotifyError

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(self, outbox: Outbox, nflog: NotificationLog, integrations: dict[str, Integration], metrics,
                 policy: RetryPolicy | None = None, rng: random.Random | None = None, claims=None):
        self.outbox, self.nflog, self.integrations, self.metrics = outbox, nflog, integrations, metrics
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        # LocalClaims (one process) or FencedClaims (the cluster's leader): see claim.py
        self.claims = claims or LocalClaims(outbox._store)
        self._lane_ready: dict[str, float] = {}
        # lane -> (first failure of the current run, failed attempts, last reason): TocsinNotificationsFailing
        self.failing: dict[str, tuple[float, int, str]] = {}
        self._lock = threading.Lock()

    def run(self, now: float) -> int:
        """Attempt every notification that is due; returns how many were delivered."""
        delivered = 0
        with self._lock:
            for lane, items in self.outbox.lanes().items():
                delivered += self._lane(lane, items, now)
            self.metrics.notification_queue.set(len(self.outbox))
        return delivered

    def _lane(self, lane: str, items: list[Pending], now: float) -> int:
        integ = self.integrations.get(lane)
        done = 0
        for p in items:
            n = p.notification
            if p.next_attempt > now or self._lane_ready.get(lane, 0.0) > now:
                break  # keep order: nothing behind it goes first
            with self.claims.claim(p) as c:
                if c.state == "gone":          # delivered or dropped by a former leader
                    c.after.append(lambda p=p: self.outbox.forget(p))
                    continue
                if c.state == "busy":          # a former leader's send is still in flight: wait for it
                    break
                p = c.pending or p
                outcome = self._attempt(lane, integ, p, c, now)
            if outcome == "delivered":
                done += 1
                if integ.min_interval:
                    self._lane_ready[lane] = now + integ.min_interval
                    break
            elif outcome == "retry":
                break
        return done

    def _attempt(self, lane: str, integ: Integration | None, p: Pending, c, now: float) -> str:
        """Send ``p`` (claimed) and record the outcome in the claim's transaction:
        delivered | dropped | retry."""
        n = p.notification
        drop = {OUTBOX: [p.key]}
        if integ is None:
            log.error("notify: dropping queued notification for %s: receiver no longer configured", lane)
            self._failed(p, "unknown_receiver")
            c.record({}, drop, lambda: self.outbox.forget(p))
            return "dropped"
        if p.deadline <= now:
            log.error("notify: giving up on %s notification to %s after %d attempts (older than the maximum "
                      "age)", n.status, lane, p.attempts)
            self._failed(p, "expired")
            c.record({}, drop, lambda: self.outbox.forget(p))
            return "dropped"
        entry = self.nflog.get(p.log_key)
        try:
            updates = integ.notify(n, dict(entry.state) if entry else {})
        except NotifyError as e:
            self._failed(p, e.reason, now)
            if not e.retryable:
                log.error("notify: %s notification to %s failed permanently, not retried: %s", n.status, lane, e)
                c.record({}, drop, lambda: self.outbox.forget(p))
                return "dropped"
            delay = self.policy.delay(p.attempts + 1, e.retry_after, self.rng)
            log.warning("notify: %s notification to %s failed (attempt %d), retry in %.1fs: %s",
                        n.status, lane, p.attempts + 1, delay, e)
            self._retry_later(p, c, now + delay)
            self._lane_ready[lane] = now + delay
            return "retry"
        except Exception:  # a bug in a notifier must not stop the others
            log.exception("notify: unexpected error sending to %s", lane)
            self._failed(p, "internal", now)
            self._retry_later(p, c, now + self.policy.delay(p.attempts + 1, None, self.rng))
            return "retry"
        puts = {}
        entry = self.nflog.with_state(p.log_key, updates) if updates else None
        if entry is not None:
            puts[NFLOG] = {p.log_key: entry.to_store()}

        def committed() -> None:
            if entry is not None:
                self.nflog.remember(p.log_key, entry)
            self.outbox.forget(p)
            self.failing.pop(p.lane, None)
        c.record(puts, drop, committed)
        self.metrics.notifications.labels(n.receiver, n.integration).inc()
        self.metrics.notification_latency.labels(n.integration).observe(max(0.0, now - n.created_at))
        log.info("notify: delivered %s notification of group %s to %s", n.status, format_labels(n.group_labels),
                 p.lane)
        return "delivered"

    def _retry_later(self, p: Pending, c, next_attempt: float) -> None:
        q = replace(p, attempts=p.attempts + 1, next_attempt=next_attempt)
        c.record({OUTBOX: {q.key: q.to_store()}}, {}, lambda: self.outbox.remember(q))

    def _failed(self, p: Pending, reason: str, now: float | None = None) -> None:
        n = p.notification
        self.metrics.notifications_failed.labels(n.receiver, n.integration, reason).inc()
        if now is not None:
            since, attempts, _ = self.failing.get(p.lane, (now, 0, ""))
            self.failing[p.lane] = (since, attempts + 1, reason)
