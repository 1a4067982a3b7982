"""The self-alert state machine (alerting/evaluate/selfalerts.py) on plain values:
a condition fires after hold_for, resolves once when it clears, the Watchdog
always fires, and the saved state carries a firing alert over to a new leader
without a second firing start."""
from alerting.evaluate.selfalerts import Condition, SelfAlerts

WAL = Condition("TocsinWALNearFull", {"replica": "r1"}, "near full")


def test_a_condition_fires_after_hold_for_and_resolves_once():
    s = SelfAlerts(hold_for=60, labels={"severity": "critical"}, watchdog=False)
    alerts, changed = s.step(1000.0, [WAL])
    assert alerts == [] and changed                      # pending
    assert s.step(1059.0, [WAL])[0] == []
    alerts, changed = s.step(1060.0, [WAL])
    assert [(a.name, a.state, a.starts_at) for a in alerts] == [("TocsinWALNearFull", "firing", 1060.0)] and changed
    assert alerts[0].labels == {"alertname": "TocsinWALNearFull", "replica": "r1", "severity": "critical"}
    assert s.step(1070.0, [WAL]) == (alerts, False)       # still firing, nothing new to save
    alerts, changed = s.step(1080.0, [])
    assert [(a.state, a.ends_at) for a in alerts] == [("resolved", 1080.0)] and changed
    assert s.step(1090.0, []) == ([], False)             # resolved once


def test_a_condition_that_clears_while_pending_never_fires():
    s = SelfAlerts(hold_for=60, labels={}, watchdog=False)
    s.step(0.0, [WAL])
    assert s.step(30.0, []) == ([], True)


def test_the_watchdog_always_fires_with_severity_none():
    s = SelfAlerts(hold_for=60, labels={"severity": "critical"}, watchdog=True)
    alerts, _ = s.step(5.0, [])
    assert [(a.name, a.state, a.labels["severity"]) for a in alerts] == [("Watchdog", "firing", "none")]


def test_a_new_leader_adopts_the_saved_state():
    old = SelfAlerts(hold_for=10, labels={}, watchdog=False)
    old.step(0.0, [WAL])
    firing, _ = old.step(10.0, [WAL])
    new = SelfAlerts(hold_for=10, labels={}, watchdog=False)
    new.adopt(old.to_doc())
    alerts, changed = new.step(20.0, [WAL])
    assert alerts == firing and not changed              # same alert, same start: nothing paged again
    alerts, _ = new.step(30.0, [])
    assert [a.state for a in alerts] == ["resolved"]     # the resolve is not forgotten
