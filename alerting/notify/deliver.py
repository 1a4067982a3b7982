"""Send-and-retry stage: delivers the outbox, lane by lane in the order queued.

The only place with retries (and their metrics): exponential backoff with
jitter, the server's Retry-After honoured, a lane waits behind its oldest
notification so messages arrive in order, and a per-lane minimum interval keeps
to rate limits such as Slack's one message per second per channel."""
from __future__ import annotations

import logging
import random
import threading

from alerting.model import format_labels

from .nflog import NotificationLog
from .outbox import Outbox, Pending
from .retry import RetryPolicy
from .types import Integration, NotifyError

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(self, outbox: Outbox, nflog: NotificationLog, integrations: dict[str, Integration], metrics,
                 policy: RetryPolicy | None = None, rng: random.Random | None = None):
        self.outbox, self.nflog, self.integrations, self.metrics = outbox, nflog, integrations, metrics
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self._lane_ready: dict[str, float] = {}
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
            if integ is None:
                log.error("notify: dropping queued notification for %s: receiver no longer configured", lane)
                self._failed(p, "unknown_receiver")
                self.outbox.remove(p)
                continue
            if p.deadline <= now:
                log.error("notify: giving up on %s notification to %s after %d attempts (older than the maximum "
                          "age)", n.status, lane, p.attempts)
                self._failed(p, "expired")
                self.outbox.remove(p)
                continue
            if p.next_attempt > now or self._lane_ready.get(lane, 0.0) > now:
                break  # keep order: nothing behind it goes first
            entry = self.nflog.get(p.log_key)
            try:
                updates = integ.notify(n, dict(entry.state) if entry else {})
            except NotifyError as e:
                self._failed(p, e.reason)
                if not e.retryable:
                    log.error("notify: %s notification to %s failed permanently, not retried: %s", n.status, lane, e)
                    self.outbox.remove(p)
                    continue
                delay = self.policy.delay(p.attempts + 1, e.retry_after, self.rng)
                log.warning("notify: %s notification to %s failed (attempt %d), retry in %.1fs: %s",
                            n.status, lane, p.attempts + 1, delay, e)
                self.outbox.failed(p, now + delay)
                self._lane_ready[lane] = now + delay
                break
            except Exception:  # a bug in a notifier must not stop the others
                log.exception("notify: unexpected error sending to %s", lane)
                self._failed(p, "internal")
                delay = self.policy.delay(p.attempts + 1, None, self.rng)
                self.outbox.failed(p, now + delay)
                break
            if updates:
                self.nflog.update_state(p.log_key, updates)
            self.outbox.remove(p)
            done += 1
            self.metrics.notifications.labels(n.receiver, n.integration).inc()
            self.metrics.notification_latency.labels(n.integration).observe(max(0.0, now - n.created_at))
            log.info("notify: delivered %s notification of group %s to %s", n.status, format_labels(n.group_labels),
                     lane)
            if integ.min_interval:
                self._lane_ready[lane] = now + integ.min_interval
                break
        return done

    def _failed(self, p: Pending, reason: str) -> None:
        n = p.notification
        self.metrics.notifications_failed.labels(n.receiver, n.integration, reason).inc()
