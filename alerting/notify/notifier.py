"""The notification pipeline, wired (after Alertmanager's ``cmd/alertmanager``):

  submit → dispatch (route tree, aggregation groups) → at each due flush:
  inhibit → silence → dedup against the nflog → queue in the outbox and log it
  (one transaction) → deliver with retry (``deliver``) → remember what the
  integration returned (in the transaction of the send's claim, ``claim.py``).

``tick(now)`` does one round and is what tests call; ``start()`` runs it every
second on a background thread.

In a cluster (docs/cluster.md) only the leader runs it: ``fence`` gives its
epoch (or raises ``Fenced``), and every write of the pipeline is a transaction
that checks it; alerts posted to any replica's Alertmanager API reach it
through the store (``posted.py``)."""
from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace

from alerting.model import Alert

from collector.store.base import Fenced, StoreUnavailable

from . import claim
from .config import NotifyConfig
from .dedup import needs_update, notified_resolved
from .deliver import Deliverer
from .groups import Dispatcher, GroupSnapshot
from .inhibit import Inhibitor
from .integrations import build_integrations
from .links import trace_link
from .nflog import NAMESPACE as NFLOG, NotificationLog, log_key
from .outbox import NAMESPACE as OUTBOX, Outbox
from .posted import PostedAlerts
from .retry import RetryPolicy
from .routing import build_tree
from .silences import Silences
from .testmessage import send_test_message
from .timeintervals import IntervalSet
from .types import Integration, Notification

log = logging.getLogger(__name__)

GC_EVERY = 3600.0


def _claim_hold(integrations) -> float:
    """How long a claimed send may keep its transaction idle: the slowest
    integration's HTTP timeout and a margin. A leader frozen mid-send holds its
    entry this long before PostgreSQL ends the transaction and the next leader
    may send it (docs/cluster.md: the duplicate window)."""
    timeouts = [float(getattr(getattr(i, "cfg", None), "timeout", 0.0) or 0.0) for i in integrations]
    return max(timeouts, default=0.0) + 5.0


class Notifier:
    def __init__(self, config: NotifyConfig, store, metrics, clock: Callable[[], float] = time.time, *,
                 environ: dict[str, str] | None = None, retry_policy: RetryPolicy | None = None,
                 rng: random.Random | None = None, stale_after: float = 900.0, interval: float = 1.0,
                 fence: Callable[[], int] | None = None, shared_posts: bool = False):
        # Everything that can fail (secrets, clients) happens before any state exists.
        self._integrations: dict[str, list[Integration]] = build_integrations(config, environ)
        tree = build_tree(config.route)
        self.config, self.store, self.metrics, self.clock = config, store, metrics, clock
        self.stale_after, self.interval = stale_after, interval
        self.nflog = NotificationLog(store)
        self.outbox = Outbox(store)
        self.silences = Silences(store, clock)
        self.inhibitor = Inhibitor(config.inhibit_rules)
        self.intervals = IntervalSet(config.time_intervals)
        self.dispatcher = Dispatcher(tree)
        lanes = {f"{r}/{i.name}": i for r, items in self._integrations.items() for i in items}
        # fence: the cluster leader's epoch (raises Fenced when not the leader); None in one process
        self._fence = fence
        claims = claim.FencedClaims(store, fence, hold_s=_claim_hold(lanes.values())) if fence is not None \
            else claim.LocalClaims(store)
        self.deliverer = Deliverer(self.outbox, self.nflog, lanes, metrics, retry_policy, rng, claims=claims)
        # shared_posts: alerts posted to /api/v2/alerts go through the store to every replica (cluster)
        self.posted_store = PostedAlerts(store) if shared_posts else None
        self._firing: dict[str, tuple[Alert, float]] = {}  # fingerprint -> (alert, last seen): inhibition sources
        # alerts posted to /api/v2/alerts (a Prometheus server): fingerprint -> (alert, resolves at, updated at)
        self._posted: dict[str, tuple[Alert, float, float]] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_gc = 0.0
        self._store_down = False
        metrics.notification_queue.set(len(self.outbox))

    # -- input -------------------------------------------------------------
    def submit(self, alerts: Iterable[Alert]) -> None:
        """Alerts of one evaluation, firing and resolved; pending ones are ignored."""
        now = self.clock()
        with self._lock:
            for a in alerts:
                if a.state not in ("firing", "resolved"):
                    continue
                if a.examples:   # the links of its example traces, from notify.trace_url
                    a = with_trace_links(a, self.config.trace_url)
                if a.resolved:
                    self._firing.pop(a.fingerprint, None)
                else:
                    self._firing[a.fingerprint] = (a, now)
                self.dispatcher.insert(a, now)

    def post(self, alerts: Iterable[tuple[Alert, float]]) -> None:
        """Alerts from outside (Alertmanager's API v2), each with the time it
        resolves by itself (its endsAt) unless posted again, as Prometheus does
        every minute. One already in the past is a resolve. Like Alertmanager,
        an alert that is still firing keeps its first startsAt. In a cluster they
        are written to the store first, and every replica takes them from there
        (``sync_posted``), the leader into its pipeline."""
        alerts = list(alerts)
        if self.posted_store is not None:
            self.posted_store.publish(alerts, self.clock())
        self.adopt(alerts)

    def sync_posted(self) -> None:
        """Take alerts posted to any replica from the store (cluster)."""
        if self.posted_store is not None:
            self.adopt(self.posted_store.changed(), shared=True)

    def adopt(self, alerts: Iterable[tuple[Alert, float]], shared: bool = False) -> None:
        """``shared``: they come from the store, where another replica put them;
        a resolve of one this process never saw firing is still passed on (the
        notification log decides whether anyone was told of it)."""
        now = self.clock()
        with self._lock:
            for a, ends in alerts:
                fp = a.fingerprint
                old = self._posted.get(fp)
                if old is not None and old[0].starts_at and a.starts_at > old[0].starts_at and old[1] > now:
                    a = replace(a, starts_at=old[0].starts_at)
                if ends <= now:
                    if old is None and fp not in self._firing and not shared:
                        continue   # a resolve of something never seen firing: nothing to tell
                    self._posted.pop(fp, None)
                    self._firing.pop(fp, None)
                    self.dispatcher.insert(replace(a, state="resolved", ends_at=ends), now)
                    continue
                a = replace(a, state="firing", ends_at=0.0)
                self._posted[fp] = (a, ends, now)
                self._firing[fp] = (a, now)
                self.dispatcher.insert(a, now)

    def mirror(self, firing: Iterable[Alert]) -> None:
        """A cluster follower shows the leader's view: the firing alerts of the
        shared rule state replace those of its own (it evaluates nothing), and
        the aggregation groups are rebuilt from them for the API."""
        now = self.clock()
        with self._lock:
            self._firing = {fp: v for fp, v in self._firing.items() if fp in self._posted}
            for a in firing:
                self._firing.setdefault(a.fingerprint, (a, now))
            self.dispatcher = Dispatcher(self.dispatcher.tree)
            for a, _ in self._firing.values():
                self.dispatcher.insert(a, now)

    # -- what the API shows ----------------------------------------------------
    def active_alerts(self) -> list[tuple[Alert, float, float]]:
        """Every alert firing now: (alert, ends at, updated at). Alerts of Tocsin's
        own rules end ``stale_after`` after their last evaluation unless seen again."""
        with self._lock:
            out = []
            for fp, (a, seen) in self._firing.items():
                posted = self._posted.get(fp)
                out.append(posted if posted is not None else (a, seen + self.stale_after, seen))
            return out

    def receivers_of(self, labels: dict[str, str]) -> list[str]:
        names: list[str] = []
        for route in self.dispatcher.tree.match(labels):
            if route.receiver not in names:
                names.append(route.receiver)
        return names

    def suppression(self, a: Alert, now: float) -> tuple[list[str], list[str]]:
        """(ids of the silences muting ``a``, fingerprints of the alerts inhibiting it)."""
        with self._lock:
            active = [x for x, _ in self._firing.values()]
        return self.silences.silenced_by(a.labels, now), self.inhibitor.inhibited_by(a, active)

    def groups(self) -> list[tuple[str, dict[str, str], list[Alert]]]:
        """(receiver, group labels, alerts) of every aggregation group."""
        with self._lock:
            return [(g.route.receiver, dict(g.labels), list(g.alerts.values()))
                    for g in sorted(self.dispatcher.groups.values(), key=lambda g: g.key)]

    # -- one round -----------------------------------------------------------
    def tick(self, now: float | None = None) -> int:
        """Flush due groups, then deliver what is due; returns notifications delivered."""
        now = self.clock() if now is None else now
        try:
            with self._lock:
                self._resolve_stale(now)
                for g in self.dispatcher.due(now):
                    snap = g.snapshot()
                    self._flush(snap, now)
                    self.dispatcher.done(g, snap, now)
                if now - self._last_gc >= GC_EVERY and self._fenced_ok():
                    self._last_gc = now
                    self.nflog.gc(now)
                    self.silences.gc(now)
                    if self.posted_store is not None:
                        self.posted_store.gc(now)
            delivered = self.deliverer.run(now)
            self._store_down = False
            return delivered
        except Fenced as e:
            # a former leader: the new one queues and sends; nothing here was written
            log.info("notify: not sending: %s", e)
            return 0
        except StoreUnavailable as e:
            # nothing was queued or recorded; due groups and the outbox are tried again next round
            if not self._store_down:
                log.warning("notify: the store is unavailable, notifications wait: %s", e)
            self._store_down = True
            return 0

    def _fence_value(self) -> int | None:
        return self._fence() if self._fence is not None else None

    def _fenced_ok(self) -> bool:
        try:
            self._fence_value()
            return True
        except Fenced:
            return False

    def _resolve_stale(self, now: float) -> None:
        # An alert the evaluator stopped reporting (rule removed) would fire forever;
        # like Alertmanager's resolve_timeout, treat it as resolved.
        for fp, (a, ends, _) in list(self._posted.items()):
            if ends <= now:   # not posted again before its endsAt: resolved, as in Alertmanager
                del self._posted[fp]
                self._firing.pop(fp, None)
                self.dispatcher.insert(replace(a, state="resolved", ends_at=ends), now)
        for fp, (a, seen) in list(self._firing.items()):
            if fp not in self._posted and now - seen > self.stale_after:
                del self._firing[fp]
                self.dispatcher.insert(replace(a, state="resolved", ends_at=seen), now)

    def muted(self, a: Alert, now: float) -> bool:
        active = [x for x, _ in self._firing.values()]
        return self.silences.mutes(a.labels, now) or self.inhibitor.muted(a, active)

    def _flush(self, snap: GroupSnapshot, now: float) -> None:
        if not self.intervals.may_send(snap.route.mute_time_intervals, snap.route.active_time_intervals, now):
            # Muted by time: nothing is sent or logged, so the next flush outside
            # the interval sends what is then current (Alertmanager's time stages).
            return
        firing = [a for a in snap.alerts if not a.resolved and not self.muted(a, now)]
        resolved = [a for a in snap.alerts if a.resolved]
        firing_fps = frozenset(a.fingerprint for a in firing)
        for integ in self._integrations[snap.route.receiver]:
            key = log_key(snap.route.receiver, integ.name, snap.key)
            entry = self.nflog.get(key)
            resolved_fps = notified_resolved(entry, frozenset(a.fingerprint for a in resolved))
            if not needs_update(entry, firing_fps, resolved_fps, send_resolved=integ.send_resolved,
                                repeat_interval=snap.route.repeat_interval, now=now,
                                resend_while_firing=integ.resend_while_firing):
                continue
            send_resolved = tuple(a for a in resolved if a.fingerprint in resolved_fps) if integ.send_resolved else ()
            entry = self.nflog.entry(key, firing_fps, resolved_fps, now)
            puts = {NFLOG: {key: entry.to_store()}}
            p = None
            if firing or send_resolved:
                n = Notification(id=uuid.uuid4().hex, receiver=snap.route.receiver, integration=integ.name,
                                 group_key=snap.key, group_labels=snap.labels, firing=tuple(firing),
                                 resolved=send_resolved, created_at=now, group_interval=snap.route.group_interval,
                                 external_url=self.config.external_url)
                p = self.outbox.new(n, key, now, deadline=now + self.config.resolve_max_age)
                puts[OUTBOX] = {p.key: p.to_store()}
            # the log entry and the queued notification: both or neither (a crash between
            # two writes would otherwise log a notification that is never sent)
            claim.apply(self.store, puts, {}, fence=self._fence_value())
            self.nflog.remember(key, entry)
            if p is None:
                continue
            self.outbox.remember(p)
            log.debug("notify: queued %s notification for %s to %s/%s", p.notification.status, snap.key,
                      snap.route.receiver, integ.name)

    # -- the cluster's last resort ----------------------------------------------
    def send_direct(self, alerts: list[Alert]) -> int:
        """Send alerts now, through the routes they match, without the outbox,
        the notification log or retries: for a replica that must say the cluster
        cannot page (no leader, PostgreSQL unreachable), when the pipeline that
        would send it is what is broken. Returns the messages delivered."""
        from .groups import group_key

        now = self.clock()
        sent = 0
        for a in alerts:
            for route in self.dispatcher.tree.match(a.labels):
                labels = route.group_labels(a.labels)
                for integ in self._integrations[route.receiver]:
                    if a.resolved and not integ.send_resolved:
                        continue
                    n = Notification(id=uuid.uuid4().hex, receiver=route.receiver, integration=integ.name,
                                     group_key=group_key(route, labels), group_labels=labels,
                                     firing=() if a.resolved else (a,), resolved=(a,) if a.resolved else (),
                                     created_at=now, group_interval=route.group_interval,
                                     external_url=self.config.external_url)
                    try:
                        integ.notify(n, {})
                        sent += 1
                        log.warning("notify: sent %s %s directly to %s/%s (the pipeline cannot send it)",
                                    n.status, a.name, route.receiver, integ.name)
                    except Exception as e:   # nothing else to fall back on: say so
                        log.error("notify: could not send %s %s directly to %s/%s: %s", n.status, a.name,
                                  route.receiver, integ.name, e)
        return sent

    # -- test message --------------------------------------------------------
    def send_test(self, receiver_name: str) -> dict[str, str | None]:
        """Send a test message through every integration of a receiver, now, without
        retries; returns integration name -> error text (None when delivered)."""
        self.config.receiver(receiver_name)  # KeyError naming the known receivers
        return send_test_message(self._integrations[receiver_name], receiver_name, self.clock(),
                                 self.config.external_url)

    # -- background ------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tocsin-notify", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("notify: tick failed")
            self._stop.wait(self.interval)


def with_trace_links(a: Alert, template: str) -> Alert:
    """``a`` with each example's ``url`` built from ``notify.trace_url`` (empty without one)."""
    return replace(a, examples=tuple(replace(e, url=trace_link(template, e.trace_id, e.span_id) or "")
                                     for e in a.examples))
