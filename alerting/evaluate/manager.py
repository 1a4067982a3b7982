"""Loads rule groups, runs them on a schedule, keeps alert state across reloads
and restarts. All fallible work of a reload happens before live state changes.

In a cluster (docs/cluster.md) only the leader evaluates: its state writes are
fenced (``fence``: the leader's epoch; a former leader's writes are refused),
each group waits for every replica to have flushed through its evaluation time
(``data_ready``), and the state with each rule's health is shared
(``share_state``) so followers answer /api/v1/rules and /api/v1/alerts from it
(``sync_from_store``); a new leader starts from it (``adopt_stored_state``)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import threading
import time as _time
from dataclasses import dataclass

from alerting.evaluate import examples as trace_examples
from alerting.evaluate.persist import NAMESPACE as STATE_NS, BufferedDocs, ReadOnlyDocs, StateDocs, StatePersister
from alerting.evaluate.rule_eval import eval_alerting, eval_recording, to_alerts
from alerting.evaluate.schedule import eval_timestamp, group_offset, next_eval
from alerting.evaluate.shared import shared_answers
from alerting.evaluate.state import FIRING, PENDING
from alerting.rules.compile import AlertingRule, Group, compile_group
from alerting.rules.loader import load_files
from collector import cancel
from collector.query.stale import STALE_NAN
from collector.store.base import Fenced

log = logging.getLogger("tocsin.rules")

JOB_PREFIX = "tocsin-rule-group:"
GROUP_THREADS = 64
HEALTH_NS = "rule_health"   # a cluster's shared rule health, one document per group


@dataclass(frozen=True)
class RuleHealth:
    health: str = "unknown"         # ok | err | unknown
    last_error: str = ""
    last_evaluation: float = 0.0    # unix seconds (evaluation timestamp)
    evaluation_time: float = 0.0    # seconds spent
    empty_evaluations: int = 0      # consecutive evaluations whose query returned nothing


@dataclass(frozen=True)
class GroupHealth:
    last_evaluation: float = 0.0
    evaluation_time: float = 0.0


class RuleManager:
    def __init__(self, store, query, record, notify, metrics, clock=_time.time, external_url: str = "",
                 external_labels: dict | None = None, default_interval: float = 60.0, batch=None,
                 query_timeout: float = 120.0, exemplars=None, fence=None, data_ready=None,
                 share_state: bool = False):
        self.query, self.record, self.notify = query, record, notify
        # exemplars(selector, start_s, end_s) -> query_exemplars' answer: example traces for latency pages
        self.exemplars = exemplars
        self.query_timeout = query_timeout   # a group's queries together, as Prometheus's query timeout
        self.share_latency_queries = True    # evaluate/shared.py (tests compare with it off)
        # Queries of one group evaluation share their reads when the query
        # function belongs to an Engine (Engine.batch); plain functions run as they are.
        self._batch = batch or getattr(getattr(query, "__self__", None), "batch", None) or contextlib.nullcontext
        self.metrics, self.clock = metrics, clock
        self.external_url = external_url
        self.default_interval = default_interval  # for groups without `interval:` (Prometheus's global one)
        self._ext = {"url": external_url, "labels": dict(external_labels or {})}
        self._lock = threading.RLock()
        # cluster: fence() -> the leader's epoch (raises Fenced otherwise); data_ready(t) -> (ok, waited s)
        self.fence, self.data_ready, self.share_state = fence, data_ready, share_state
        self._store = store
        self._persist = StatePersister(StateDocs(store, fence) if store is not None else None)
        self._restored = self._persist.restore()
        self._groups: dict[str, Group] = {}
        self._entries: dict[tuple[str, str], dict] = {}
        self._health: dict[tuple[str, str], RuleHealth] = {}
        self._ghealth: dict[str, GroupHealth] = {}
        self._paths: list[str] = []
        self._written: dict[tuple[str, str], set] = {}     # series each rule wrote at its last evaluation
        self._scheduler = None
        self._own_scheduler = False

    # --- loading ----------------------------------------------------------------
    def load(self, paths_or_globs) -> list[str]:
        """Replace the rule set. On any error the previous set stays and the
        errors are returned."""
        paths = [paths_or_globs] if isinstance(paths_or_globs, str) else list(paths_or_globs)
        specs, errors = load_files(paths, self.default_interval)
        if errors:
            return errors
        try:
            groups = {g.name: compile_group(g) for g in specs}
        except Exception as e:  # a compile bug must not take the old rules down
            return [f"compiling rules: {e}"]
        with self._lock:
            keys = {(g.name, r.key) for g in groups.values() for r in g.rules}
            entries = {}
            for k in keys:
                if k in self._entries:
                    entries[k] = self._entries[k]
                elif k in self._restored:
                    entries[k] = self._restored.pop(k)
            self._entries = entries
            self._health = {k: v for k, v in self._health.items() if k in keys}
            self._ghealth = {k: v for k, v in self._ghealth.items() if k in groups}
            self._groups = groups
            self._paths = paths
            try:
                self._persist.forget_rules(keys | set(self._restored))
            except Fenced:
                pass   # a cluster follower: the leader keeps the shared state
            self._update_alert_gauge()
            if self._scheduler is not None:
                self._schedule_jobs()
        return []

    def reload(self) -> list[str]:
        return self.load(self._paths)

    # --- evaluation -------------------------------------------------------------
    def evaluate_group(self, name: str, t: float | None = None) -> list:
        """Evaluate every rule of a group at ``t`` (default: the group's last grid
        point). Returns the alerts handed to ``notify``."""
        with self._lock:
            g = self._groups.get(name)
            if g is None:
                raise KeyError(f"no rule group named {name!r}")
            if t is None:
                t = eval_timestamp(self.clock(), g.interval, group_offset(g.name, g.interval))
            snapshot = {r.key: self._entries.get((g.name, r.key), {}) for r in g.rules}
        if self.data_ready is not None and not self._wait_for_data(g.name, t):
            return []
        started = _time.perf_counter()
        alerts = []   # (rule, alert)
        # The group's own token: its queries stop at the timeout or at shutdown, and
        # no other group or the notifier waits for them (each group has its own thread).
        token = cancel.Token(timeout_s=self.query_timeout, what=f"rule group {name!r}")
        with cancel.running(token), self._batch(len(g.rules)):
            results = self._run_rules(g, t, snapshot)
        with self._lock:
            if self._groups.get(name) is not g:
                # Reloaded meanwhile: keep state only for rules that still exist.
                live = {(x.name, y.key) for x in self._groups.values() for y in x.rules}
            else:
                live = None
            with self._one_write(g.name) as buf:
                for r, res, took in results:
                    key = (g.name, r.key)
                    if live is not None and key not in live:
                        continue
                    self._account(g, r, res, t, took)
                    if isinstance(r, AlertingRule):
                        self._entries[key] = res.entries
                        self._save(g.name, r.key, res.entries)
                        alerts.extend((r, a) for a in to_alerts(r, res.entries, self.external_url))
                self._ghealth[g.name] = GroupHealth(t, _time.perf_counter() - started)
                if self.share_state and buf is not None:
                    buf.kv_put_many(HEALTH_NS, {g.name: self._health_doc(g)})
            self._update_alert_gauge()
        # outside the lock: example traces are a store read, and a page never waits on them long
        with cancel.running(cancel.Token(timeout_s=self.query_timeout, what=f"example traces of {name!r}")):
            alerts = trace_examples.attach(alerts, self.exemplars, t)
        if self.metrics is not None:
            self.metrics.rule_eval_duration.labels(g.name).observe(_time.perf_counter() - started)
            self.metrics.rule_last_eval.labels(g.name).set(t)
        if alerts:
            try:
                self.notify(alerts)
            except Exception:
                log.exception("notify failed for group %s", g.name)
        return alerts

    def _wait_for_data(self, group: str, t: float) -> bool:
        """Rules never judge partial data: wait until every live replica has
        flushed through ``t`` (bounded); past the bound skip this evaluation —
        the alert state holds — and count it."""
        ok, waited = self.data_ready(t)
        if self.metrics is not None:
            self.metrics.rule_data_wait.labels(group).observe(waited)
        if ok:
            return True
        log.warning("rule group %s: evaluation at %.0f skipped: not every replica has flushed its data through "
                    "that time after %.1fs (state held)", group, t, waited)
        if self.metrics is not None:
            self.metrics.rule_group_skipped.labels(group, "replicas_behind").inc()
        return False

    def _health_doc(self, g) -> dict:
        gh = self._ghealth.get(g.name, GroupHealth())
        return {"last_evaluation": gh.last_evaluation, "evaluation_time": gh.evaluation_time,
                "rules": {r.key: vars(self._health[(g.name, r.key)]) for r in g.rules
                          if (g.name, r.key) in self._health}}

    # --- shared state (cluster) ---------------------------------------------------
    def adopt_stored_state(self) -> None:
        """A new leader: alert state as the store has it (the former leader's),
        so `for` timers go on and firing alerts are not paged again."""
        restored = self._persist.restore()
        with self._lock:
            keys = {(g.name, r.key) for g in self._groups.values() for r in g.rules}
            self._entries = {k: v for k, v in restored.items() if k in keys}
            self._restored = {k: v for k, v in restored.items() if k not in keys}
            self._written = {}
            self._update_alert_gauge()

    def sync_from_store(self) -> None:
        """A follower: the leader's alert state and rule health, for the API."""
        if self._store is None:
            return
        docs = self._store.kv_list(STATE_NS)
        health = self._store.kv_list(HEALTH_NS)
        fresh = StatePersister(ReadOnlyDocs(docs)).restore()
        with self._lock:
            keys = {(g.name, r.key) for g in self._groups.values() for r in g.rules}
            self._entries = {k: v for k, v in fresh.items() if k in keys}
            for name, doc in health.items():
                if name not in self._groups:
                    continue
                self._ghealth[name] = GroupHealth(float(doc.get("last_evaluation", 0)),
                                                  float(doc.get("evaluation_time", 0)))
                for rkey, h in (doc.get("rules") or {}).items():
                    if (name, rkey) in keys:
                        self._health[(name, rkey)] = RuleHealth(**h)
            self._update_alert_gauge()

    def _run_rules(self, g, t: float, snapshot: dict) -> list:
        results = []
        # Latency rules that differ only in `match` share two queries (evaluate/shared.py).
        shared = shared_answers(g.rules, self.query, t) if self.share_latency_queries else {}

        def query(expr: str, at: float):
            got = shared.get(expr) if at == t else None
            return got if got is not None else self.query(expr, at)

        for r in g.rules:
            r0 = _time.perf_counter()
            if isinstance(r, AlertingRule):
                res = eval_alerting(r, snapshot[r.key], query, t, g.limit, self._ext)
            else:
                res = eval_recording(r, self.query, t, g.limit)
            # Written now, not at the end: later rules of the group read earlier
            # rules' output at the same timestamp (as in Prometheus).
            written = set()
            for metric, labels, value in res.samples:
                self._record(metric, labels, t, value)
                written.add((metric, tuple(sorted(labels.items()))))
            # Series this rule wrote last time and not now end with a staleness
            # marker, so they vanish from queries at once, not 5 minutes later.
            with self._lock:
                before = self._written.get((g.name, r.key), set())
                self._written[(g.name, r.key)] = written
            for metric, labels in before - written:
                self._record(metric, dict(labels), t, STALE_NAN)
            results.append((r, res, _time.perf_counter() - r0))
        return results

    def _account(self, g, r, res, t, took) -> None:
        prev = self._health.get((g.name, r.key), RuleHealth())
        empty = prev.empty_evaluations + 1 if res.empty else 0
        self._health[(g.name, r.key)] = RuleHealth("err" if res.error else "ok", res.error, t, took, empty)
        if self.metrics is None:
            return
        if res.error:
            self.metrics.rule_eval_failures.labels(g.name, r.name).inc()
        for reason, n in res.skipped.items():
            self.metrics.rule_eval_skipped.labels(g.name, r.name, reason).inc(n)

    def _save(self, group, key, entries) -> None:
        try:
            self._persist.save(group, key, entries)
        except Exception:  # the store is down: alerting goes on, state is rewritten next time
            log.exception("could not persist alert state of %s/%s", group, key)
            self._persist.unwritten(f"{group}\x1f{key}\x1f")

    @contextlib.contextmanager
    def _one_write(self, group: str):
        """The state documents of a whole group evaluation (and, shared, its
        health) go to the store in one transaction, not one write per rule."""
        store = self._persist.store
        if store is None:
            yield None
            return
        buf = BufferedDocs(store)
        self._persist.store = buf
        try:
            yield buf
        finally:
            self._persist.store = store
            try:
                buf.flush()
            except Fenced as e:   # no longer the leader: the new one owns the state
                log.info("alert state of group %s not saved: %s", group, e)
                self._persist._written = {k: v for k, v in self._persist._written.items()
                                          if not k.startswith(f"{group}\x1f")}
            except Exception:  # the store is down: alerting goes on, state is rewritten next time
                log.exception("could not persist alert state of group %s", group)
                self._persist.unwritten(f"{group}\x1f")

    def _record(self, metric, labels, t, value) -> None:
        try:
            self.record(metric, labels, t, value)
        except Exception:
            log.exception("could not record %s", metric)

    def _update_alert_gauge(self) -> None:
        if self.metrics is None:
            return
        n = {PENDING: 0, FIRING: 0}
        for entries in self._entries.values():
            for e in entries.values():
                if e.state in n:
                    n[e.state] += 1
        for state, v in n.items():
            self.metrics.alerts.labels(state).set(v)

    # --- schedule ---------------------------------------------------------------
    def start(self, scheduler=None) -> None:
        """Run every group on its interval with an apscheduler scheduler (a
        BackgroundScheduler is created when none is given: evaluations query
        the store, which blocks, so they run in threads, not on the event loop)."""
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        with self._lock:
            if scheduler is None:
                # Enough threads that a group overrunning its interval never delays another one.
                scheduler = BackgroundScheduler(timezone=_dt.timezone.utc,
                                                executors={"default": ThreadPoolExecutor(GROUP_THREADS)})
                self._own_scheduler = True
            scheduler.add_listener(self._on_missed, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
            self._scheduler = scheduler
            self._schedule_jobs()
            if not scheduler.running:
                scheduler.start()

    def stop(self) -> None:
        with self._lock:
            s, self._scheduler = self._scheduler, None
            if s is None:
                return
            for job in s.get_jobs():
                if job.id.startswith(JOB_PREFIX):
                    job.remove()
            own, self._own_scheduler = self._own_scheduler, False
        if own:   # outside the lock: a running evaluation needs it to finish
            s.shutdown(wait=True)

    def _schedule_jobs(self) -> None:
        from apscheduler.triggers.interval import IntervalTrigger

        s = self._scheduler
        for job in s.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id[len(JOB_PREFIX):] not in self._groups:
                job.remove()
        now = self.clock()
        for g in self._groups.values():
            offset = group_offset(g.name, g.interval)
            first = next_eval(now, g.interval, offset)
            trigger = IntervalTrigger(seconds=g.interval,
                                      start_date=_dt.datetime.fromtimestamp(first, _dt.timezone.utc))
            s.add_job(self._run_scheduled, trigger, args=[g.name], id=JOB_PREFIX + g.name,
                      replace_existing=True, coalesce=True, max_instances=1,
                      misfire_grace_time=max(int(g.interval), 1))

    def _on_missed(self, event) -> None:
        """The group's previous evaluation was still running (or the scheduler fell
        behind): this iteration is skipped and counted, as Prometheus does."""
        job_id = getattr(event, "job_id", "") or ""
        if not job_id.startswith(JOB_PREFIX):
            return
        name = job_id[len(JOB_PREFIX):]
        log.warning("rule group %s missed an evaluation: its previous one was still running", name)
        if self.metrics is not None:
            self.metrics.rule_iterations_missed.labels(name).inc()

    def _run_scheduled(self, name: str) -> None:
        try:
            self.evaluate_group(name)
        except KeyError:
            pass                                   # removed by a reload in between
        except Exception:
            log.exception("evaluating rule group %s", name)

    # --- views for the API ------------------------------------------------------
    def groups(self) -> list[Group]:
        with self._lock:
            return list(self._groups.values())

    def group_health(self, name: str) -> GroupHealth:
        return self._ghealth.get(name, GroupHealth())

    def rule_health(self, group: str, key: str) -> RuleHealth:
        return self._health.get((group, key), RuleHealth())

    def rule_entries(self, group: str, key: str) -> dict:
        return dict(self._entries.get((group, key), {}))

    def firing_alerts(self) -> list:
        """The firing alerts of the current state, as the notifier receives them."""
        with self._lock:
            out = []
            for g in self._groups.values():
                for r in g.rules:
                    if not isinstance(r, AlertingRule):
                        continue
                    entries = {fp: e for fp, e in self._entries.get((g.name, r.key), {}).items() if e.state == FIRING}
                    out.extend(to_alerts(r, entries, self.external_url))
            return out

    def active(self) -> list:
        """(rule, entry) for every pending or firing alert."""
        with self._lock:
            return [(r, e) for g in self._groups.values() for r in g.rules if isinstance(r, AlertingRule)
                    for e in self._entries.get((g.name, r.key), {}).values() if e.state in (PENDING, FIRING)]
