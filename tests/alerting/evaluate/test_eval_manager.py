"""RuleManager: all-or-nothing loads, reloads that keep state, plain PromQL
rules, recording rules with staleness markers, health, schedule."""
from __future__ import annotations

import math
import struct
import threading
import time

from evalfakes import DictStore, Notifications, Recorder

from alerting.evaluate.manager import RuleManager
from alerting.evaluate.schedule import eval_timestamp, group_offset
from alerting.evaluate.state import AlertEntry, Observation, step
from collector.selfmetrics import SelfMetrics

RULES = """\
groups:
- name: g
  interval: 1m
  rules:
  - record: job:up:sum
    expr: sum by (job) (up)
  - alert: Down
    expr: up == 0
    for: FOR
    keep_firing_for: 2m
    labels: {severity: page, instance_copy: "{{ $labels.instance }}"}
    annotations: {summary: "{{ $labels.instance }} down ({{ $value }})"}
"""


class Table:
    """query(): instant vector from a per-time table of up{instance} values."""

    def __init__(self):
        self.up = {}          # t -> {instance: value}
        self.fail = False

    def __call__(self, expr, t):
        if self.fail:
            raise RuntimeError("store unavailable")
        rows = self.up.get(t, {})
        if expr == "up == 0":
            return [({"__name__": "up", "job": "api", "instance": i}, v) for i, v in rows.items() if v == 0]
        if expr.startswith("sum by (job)"):
            return [({"job": "api"}, float(sum(rows.values())))] if rows else []
        raise AssertionError(expr)


def make(tmp_path, for_="2m", store=None, query=None):
    p = tmp_path / "r.yaml"
    p.write_text(RULES.replace("FOR", for_))
    q, rec, notes = query or Table(), Recorder(), Notifications()
    m = RuleManager(store or DictStore(), q, rec, notes, SelfMetrics(), clock=lambda: 0.0)
    assert m.load([str(p)]) == []
    return m, q, rec, notes, p


def test_plain_rule_for_and_keep_firing_for(tmp_path):
    m, q, rec, notes, _ = make(tmp_path)
    for i, v in enumerate([1, 0, 0, 0, 1, 1, 1, 1]):
        q.up[i * 60.0] = {"a:1": v}
    seen = []
    for i in range(8):
        alerts = m.evaluate_group("g", i * 60.0)
        seen.append([(a.state, a.starts_at, a.ends_at) for a in alerts])
    # pending at 60, firing at 180, condition gone at 240, kept firing 2m, resolved at 360
    assert seen[2] == [] and seen[3] == [("firing", 180.0, 0.0)]
    assert seen[4] == seen[5] == [("firing", 180.0, 0.0)]
    assert seen[6] == seen[7] == [("resolved", 180.0, 360.0)]
    a = notes.batches[0][0]
    assert a.labels == {"alertname": "Down", "job": "api", "instance": "a:1", "severity": "page",
                        "instance_copy": "a:1"}
    assert a.annotations == {"summary": "a:1 down (0)"}


def test_recording_rule_writes_samples_and_staleness_markers(tmp_path):
    m, q, rec, _, _ = make(tmp_path)
    q.up = {0.0: {"a:1": 1, "b:1": 1}, 60.0: {}}
    m.evaluate_group("g", 0.0)
    m.evaluate_group("g", 60.0)
    rows = [(metric, labels, t, v) for metric, labels, t, v in rec.samples if metric == "job:up:sum"]
    assert rows[0] == ("job:up:sum", {"job": "api"}, 0.0, 2.0)
    stale = rows[1]
    assert stale[:3] == ("job:up:sum", {"job": "api"}, 60.0)
    assert struct.pack("<d", stale[3]) == struct.pack("<Q", 0x7FF0000000000002)


def test_failed_load_keeps_the_previous_rules(tmp_path):
    m, q, *_ , p = make(tmp_path)
    p.write_text("groups:\n- name: g\n  rules:\n  - alert: X\n    expr: 'up =='\n")
    errors = m.reload()
    assert len(errors) == 1 and "could not parse expression" in errors[0]
    assert [r.name for r in m.groups()[0].rules] == ["job:up:sum", "Down"]


def test_reload_keeps_state_of_unchanged_and_changed_rules(tmp_path):
    m, q, rec, notes, p = make(tmp_path)
    q.up = {0.0: {"a:1": 0}, 60.0: {"a:1": 0}, 120.0: {"a:1": 0}}
    m.evaluate_group("g", 0.0)
    m.evaluate_group("g", 60.0)
    p.write_text(RULES.replace("FOR", "2m").replace("page", "page").replace("down (", "is down ("))
    assert m.reload() == []
    alerts = m.evaluate_group("g", 120.0)           # pending timer from t=0 continues
    assert [(a.state, a.starts_at) for a in alerts] == [("firing", 120.0)]
    assert alerts[0].annotations["summary"] == "a:1 is down (0)"


def test_query_error_marks_rule_unhealthy_and_keeps_state(tmp_path):
    m, q, *_ = make(tmp_path, for_="0s")
    q.up = {0.0: {"a:1": 0}}
    m.evaluate_group("g", 0.0)
    q.fail = True
    alerts = m.evaluate_group("g", 60.0)
    assert [a.state for a in alerts] == ["firing"]
    h = m.rule_health("g", "Down")
    assert h.health == "err" and h.last_error == "store unavailable" and h.last_evaluation == 60.0
    v = m.metrics.registry.get_sample_value("tocsin_rule_evaluation_failures_total", {"group": "g", "rule": "Down"})
    assert v == 1
    q.fail = False
    m.evaluate_group("g", 120.0)
    assert m.rule_health("g", "Down").health == "ok"


def test_state_machine_holds_and_resolved_retention():
    obs = {"x": Observation({"a": "1"}, {}, 1.0, True)}
    e = step({}, obs, set(), 0.0, 60.0, 0.0)
    assert e["x"].state == "pending"
    held = step(e, {}, {"x"}, 120.0, 60.0, 0.0)     # no decision: pending stays pending
    assert held == e
    fired = step(held, obs, set(), 130.0, 60.0, 0.0)
    assert fired["x"].state == "firing" and fired["x"].fired_at == 130.0
    resolved = step(fired, {}, set(), 140.0, 60.0, 0.0)
    assert resolved["x"].state == "inactive" and resolved["x"].resolved_at == 140.0
    assert step(resolved, {}, set(), 140.0 + 900, 60.0, 0.0)["x"] == resolved["x"]
    assert step(resolved, {}, set(), 140.0 + 901, 60.0, 0.0) == {}
    assert AlertEntry.from_doc(fired["x"].to_doc()) == fired["x"]
    nan = AlertEntry({"a": "1"}, value=math.nan)
    assert math.isnan(AlertEntry.from_doc(nan.to_doc()).value)


def test_grid_alignment_is_stable_per_group():
    off = group_offset("latency", 15.0)
    assert 0 <= off < 15 and off == group_offset("latency", 15.0) != group_offset("other", 15.0)
    t = eval_timestamp(1000.0, 15.0, off)
    assert t <= 1000.0 < t + 15 and (t - off) % 15 == 0


def test_start_runs_groups_on_the_scheduler(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("groups:\n- name: fast\n  interval: 1s\n  rules:\n  - record: r\n    expr: vector(1)\n")
    done = threading.Event()
    rec = []

    def record(metric, labels, t, v):
        rec.append(t)
        done.set()

    m = RuleManager(DictStore(), lambda e, t: [({}, 1.0)], record, lambda a: None, SelfMetrics())
    assert m.load([str(p)]) == []
    m.start()
    try:
        assert done.wait(5)
    finally:
        m.stop()
    off = group_offset("fast", 1.0)
    assert abs(((rec[0] - off) % 1.0)) < 1e-6 or abs(((rec[0] - off) % 1.0) - 1) < 1e-6
    assert rec[0] <= time.time()
