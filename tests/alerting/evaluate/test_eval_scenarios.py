"""Latency-rule scenarios with an injected clock and scripted query results,
each also run with a restart (a new RuleManager on the same store) in the middle."""
from __future__ import annotations

import pytest
from evalfakes import DictStore, LatencyScript, Notifications, Recorder

from alerting.evaluate.manager import RuleManager
from collector.selfmetrics import SelfMetrics

T0, STEP = 1_000_020.0, 15.0
SERIES = {"service_name": "checkout"}

RULES = """\
groups:
- name: latency
  interval: 15s
  rules:
  - alert: CheckoutSlow
    latency:
      match: {service_name: checkout}
      above: 500ms
      recover_below: 400ms
      min_count: 20
      window: 1m
      no_data: NO_DATA
    for: 1m
    annotations:
      summary: "p95 {{ $value | humanizeDuration }} on {{ $labels.service_name }}"
"""


def ts(i: int) -> float:
    return T0 + i * STEP


def script(values: list) -> dict:
    """values: p95 seconds, (p95, count), or None (no data) per step."""
    out = {}
    for i, v in enumerate(values):
        out[ts(i)] = v if v is None or isinstance(v, tuple) else (v, 100)
    return out


def run(tmp_path, values, *, no_data="keep", restart_at=(), store=None):
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("NO_DATA", no_data))
    store = store or DictStore()
    query = LatencyScript(SERIES, script(values))
    notes, rec = Notifications(), Recorder()
    metrics = SelfMetrics()
    clock = [ts(0)]

    def make():
        m = RuleManager(store, query, rec, notes, metrics, clock=lambda: clock[0], external_url="http://t")
        assert m.load([str(path)]) == []
        return m

    m = make()
    timeline = []
    for i in range(len(values)):
        if i in restart_at:
            m = make()
        clock[0] = ts(i)
        alerts = m.evaluate_group("latency", ts(i))
        entries = [e for r in m.groups()[0].rules for e in m.rule_entries("latency", r.key).values()]
        timeline.append((i, sorted(e.state for e in entries),
                         sorted((a.state, a.starts_at, a.ends_at) for a in alerts)))
    return timeline, metrics, rec, store, notes


def states(timeline):
    return [s[0] if s else "-" for _, s, _ in timeline]


def sent(timeline):
    return [a for _, _, alerts in timeline for a in alerts]


SPIKE = [0.2] * 4 + [0.9] * 9 + [0.2] * 4
WANDER = [0.2] * 3 + [0.6] * 5 + [0.45, 0.55, 0.41, 0.52, 0.43, 0.6, 0.42] + [0.3] * 3
LOW_TRAFFIC = [(0.9, 5)] * 12
GAP = [0.2] * 2 + [0.9] * 6 + [None] * 6 + [0.2] * 2


def test_spike_goes_pending_then_firing_after_for_then_resolves(tmp_path):
    tl, _, rec, _, notes = run(tmp_path, SPIKE)
    assert states(tl) == ["-"] * 4 + ["pending"] * 4 + ["firing"] * 5 + ["inactive"] * 4
    firing = [a for a in sent(tl) if a[0] == "firing"]
    assert {a[1] for a in firing} == {ts(8)}
    resolved = [a for a in sent(tl) if a[0] == "resolved"]
    assert resolved[0] == ("resolved", ts(8), ts(13))
    alert = notes.batches[0][0]
    assert alert.labels == {"alertname": "CheckoutSlow", "service_name": "checkout", "severity": "critical"}
    assert alert.annotations["summary"] == "p95 900ms on checkout"
    assert alert.generator_url.startswith("http://t/graph?g0.expr=histogram_quantile")
    names = {(m, l.get("alertstate")) for m, l, t, v in rec.samples}
    assert names == {("ALERTS", "pending"), ("ALERTS", "firing"), ("ALERTS_FOR_STATE", None)}
    for_state = [v for m, l, t, v in rec.samples if m == "ALERTS_FOR_STATE" and v == v]  # not stale markers
    assert set(for_state) == {ts(4)}


def test_wandering_value_with_recover_below_fires_once_without_flapping(tmp_path):
    tl, *_ = run(tmp_path, WANDER)
    st = states(tl)
    assert st[7:15] == ["firing"] * 8
    assert st[15:] == ["inactive"] * 3
    starts = {a[1] for a in sent(tl)}
    assert starts == {ts(7)}
    assert sum(1 for i, (_, s, _) in enumerate(tl) if s == ["inactive"] and tl[i - 1][1] == ["firing"]) == 1


def test_traffic_below_min_count_never_pages(tmp_path):
    tl, metrics, *_ = run(tmp_path, LOW_TRAFFIC)
    assert sent(tl) == [] and set(states(tl)) == {"-"}
    v = metrics.registry.get_sample_value("tocsin_rule_evaluations_skipped_total",
                                          {"group": "latency", "rule": "CheckoutSlow", "reason": "min_count"})
    assert v == len(LOW_TRAFFIC)


def test_low_traffic_holds_a_firing_alert(tmp_path):
    tl, *_ = run(tmp_path, [0.9] * 6 + [(0.1, 3)] * 4 + [0.1])
    assert states(tl)[4:] == ["firing"] * 6 + ["inactive"]


@pytest.mark.parametrize("mode,expect_gap", [("keep", "firing"), ("ok", "inactive"), ("alert", "firing")])
def test_data_gap_follows_no_data(tmp_path, mode, expect_gap):
    tl, metrics, *_ = run(tmp_path, GAP, no_data=mode)
    st = states(tl)
    assert st[6:8] == ["firing"] * 2
    assert set(st[8:14]) == {expect_gap}
    assert st[14:] == ["inactive"] * 2
    skipped = metrics.registry.get_sample_value("tocsin_rule_evaluations_skipped_total",
                                                {"group": "latency", "rule": "CheckoutSlow", "reason": "no_data"})
    assert (skipped or 0) == (0 if mode == "alert" else 6)


def test_no_data_alert_fires_when_nothing_was_ever_seen(tmp_path):
    tl, *_ = run(tmp_path, [None] * 6, no_data="alert")
    assert states(tl) == ["pending"] * 4 + ["firing"] * 2
    assert sent(tl)[0][0] == "firing"


@pytest.mark.parametrize("name,values,mode", [("spike", SPIKE, "keep"), ("wander", WANDER, "keep"),
                                               ("low", LOW_TRAFFIC, "keep"), ("gap-keep", GAP, "keep"),
                                               ("gap-ok", GAP, "ok"), ("gap-alert", GAP, "alert")])
def test_restart_in_the_middle_gives_the_same_outcome(tmp_path, name, values, mode):
    plain, *_ = run(tmp_path, values, no_data=mode)
    for k in range(1, len(values)):
        restarted, *_ = run(tmp_path, values, no_data=mode, restart_at={k})
        assert restarted == plain, f"restart before step {k}"


def test_state_survives_downtime_and_resolves_after_it(tmp_path):
    store = DictStore()
    run(tmp_path, [0.9] * 6, store=store)                       # firing when the process stops
    # Back after 10 minutes of downtime; latency is fine now.
    values = [None] * 40 + [0.2]
    tl, *_ = run(tmp_path, values, store=store, no_data="keep")
    assert tl[0][1] == ["firing"]                               # held through missing data
    last = tl[-1][2]
    assert last == [("resolved", ts(4), ts(40))]


def test_only_changes_are_persisted(tmp_path):
    store = DictStore()
    run(tmp_path, [0.9] * 12, store=store)
    # pending, firing: two writes of one document; values changing do not write
    assert store.writes == 2
    (doc,) = store.kv_list("alert_state").values()
    assert doc["state"] == "firing" and doc["active_at"] == ts(0) and doc["fired_at"] == ts(4)


def test_a_resolve_reads_its_value_at_resolve_time_and_its_worst(tmp_path):
    """The page that resolves says what the value is now (and its annotations say the
    same), and what it was at its worst: no firing summary on a resolve."""
    from alerting.notify.console.console import format_notification
    from alerting.notify.slack.blocks import render
    from alerting.notify.types import Notification

    *_, notes = run(tmp_path, [0.2] * 2 + [0.7, 0.9523, 0.8, 0.75, 0.6, 0.3226])
    alerts = [a for batch in notes.batches for a in batch]
    resolved = [a for a in alerts if a.state == "resolved"]
    firing = [a for a in alerts if a.state == "firing"]
    assert firing and resolved
    r = resolved[0]
    assert (r.value, r.worst, r.unit) == (0.3226, 0.9523, "seconds")
    assert r.annotations["summary"] == "p95 322.6ms on checkout"
    n = Notification("id", "console", "console", "g", {"alertname": "CheckoutSlow"}, (), (r,), 0.0)
    assert format_notification(n).splitlines() == [
        '[RESOLVED] CheckoutSlow receiver=console group={alertname="CheckoutSlow"}',
        '  [resolved] CheckoutSlow{service_name="checkout", severity="critical"} value=322.6ms (worst 952.3ms) '
        'summary="p95 322.6ms on checkout"']
    _, blocks = render(n)
    assert "*Value*\n322.6ms (worst 952.3ms)" in [f["text"] for f in blocks[2]["fields"]]
    assert firing[-1].value == 0.6 and firing[-1].annotations["summary"] == "p95 600ms on checkout"


# -- the same on the real stores (DuckDB file, PostgreSQL): state survives a restart
#    with a new store object, exactly as with the in-memory one -------------------------------
from backends import both_backends  # noqa: E402


def _forget(store) -> None:
    for key in store.kv_list("alert_state"):
        store.kv_delete("alert_state", key)


@both_backends
@pytest.mark.parametrize("name,values,mode", [("spike", SPIKE, "keep"), ("gap-alert", GAP, "alert")])
def test_restart_on_a_real_store_gives_the_same_outcome(tmp_path, make_store, name, values, mode):
    plain, *_ = run(tmp_path, values, no_data=mode)
    store = make_store()
    for k in (2, 5, len(values) - 2):
        _forget(store)
        restarted, *_ = run(tmp_path, values, no_data=mode, restart_at={k}, store=store)
        assert restarted == plain, f"restart before step {k}"


@both_backends
def test_state_survives_downtime_on_a_real_store(tmp_path, make_store):
    run(tmp_path, [0.9] * 6, store=make_store())                 # firing when the process stops
    tl, *_ = run(tmp_path, [None] * 40 + [0.2], store=make_store(), no_data="keep")   # a new store object
    assert tl[0][1] == ["firing"]
    assert tl[-1][2] == [("resolved", ts(4), ts(40))]
