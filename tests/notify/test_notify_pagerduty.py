"""PagerDuty Events API v2 over real HTTP, and restarts on the same store."""
import random

import pytest

from alerting.model import Alert
from alerting.notify import Notifier, NotifyConfig
from alerting.notify.pagerduty.pagerduty import SUMMARY_MAX, dedup_key
from alerting.notify.retry import RetryPolicy
from collector.selfmetrics import SelfMetrics
from notify_fakes import FakeHTTP, Script

ACCEPTED = (202, {}, {"status": "success", "message": "Event processed", "dedup_key": "x"})


@pytest.fixture
def pd():
    script = Script(ACCEPTED)
    h = FakeHTTP(lambda req: script(req))
    h.script = script
    yield h
    h.close()


def notifier(pd, store, clock, metrics=None):
    cfg = NotifyConfig.model_validate({
        "receivers": [{"name": "oncall", "pagerduty": {"routing_key_env": "PD_KEY", "api_url": pd.url}}],
        "route": {"group_by": ["alertname", "service_name"], "group_wait": "0s", "group_interval": "1m"}})
    return Notifier(cfg, store, metrics or SelfMetrics(), clock=clock, environ={"PD_KEY": "R0UTINGKEY"},
                    retry_policy=RetryPolicy(base=1, cap=8), rng=random.Random(3), stale_after=10 ** 9)


def alert(state="firing", t=0.0, severity="critical", summary="p95 above 500ms"):
    return Alert(labels={"alertname": "CheckoutSlow", "service_name": "checkout", "severity": severity},
                 annotations={"summary": summary}, state=state, starts_at=t, ends_at=t + 1 if state == "resolved" else 0,
                 value=0.7, generator_url="http://tocsin/graph?x")


def run(n, clock, seconds=60):
    for _ in range(seconds):
        n.tick(); clock.advance(1)


def bodies(pd):
    return [r.json() for r in pd.requests]


def test_500_then_202_is_one_incident(pd, store, clock, metrics):
    pd.script.replies = [(500, {}, "oops"), (500, {}, "oops"), ACCEPTED]
    n = notifier(pd, store, clock, metrics)
    n.submit([alert(t=clock.t)])
    run(n, clock, 30)
    sent = bodies(pd)
    assert len(sent) == 3 and {b["dedup_key"] for b in sent} == {sent[0]["dedup_key"]}
    assert pd.requests[0].path == "/v2/enqueue"
    b = sent[-1]
    assert b["event_action"] == "trigger" and b["routing_key"] == "R0UTINGKEY"
    assert b["payload"]["severity"] == "critical" and b["payload"]["source"] == "tocsin"
    assert b["payload"]["summary"].startswith("[FIRING:1] CheckoutSlow (service_name=checkout): p95 above")
    assert b["links"][0]["href"] == "http://tocsin/graph?x"
    assert metrics.notifications.labels("oncall", "pagerduty")._value.get() == 1
    assert metrics.notifications_failed.labels("oncall", "pagerduty", "http_500")._value.get() == 2


def test_400_is_not_retried(pd, store, clock, metrics):
    pd.script.replies = [(400, {}, {"status": "invalid event", "errors": ["bad"]})]
    n = notifier(pd, store, clock, metrics)
    n.submit([alert(t=clock.t)])
    run(n, clock, 30)
    assert len(pd.requests) == 1 and len(n.outbox) == 0


def test_429_honours_retry_after(pd, store, clock):
    pd.script.replies = [(429, {"Retry-After": "7"}, "slow down"), ACCEPTED]
    n = notifier(pd, store, clock)
    n.submit([alert(t=clock.t)])
    times = []
    for _ in range(20):
        k = len(pd.requests); n.tick()
        times += [clock.t] * (len(pd.requests) - k); clock.advance(1)
    assert len(times) == 2 and times[1] - times[0] == 7


def test_summary_limit_and_severity_mapping(pd, store, clock):
    n = notifier(pd, store, clock)
    n.submit([alert(t=clock.t, severity="warning", summary="x" * 5000)])
    run(n, clock, 2)
    p = bodies(pd)[0]["payload"]
    assert len(p["summary"]) == SUMMARY_MAX and p["severity"] == "warning"


def test_unknown_severity_defaults_to_error(pd, store, clock):
    n = notifier(pd, store, clock)
    n.submit([alert(t=clock.t, severity="sev-2")])
    run(n, clock, 2)
    assert bodies(pd)[0]["payload"]["severity"] == "error"


def test_restart_between_firing_and_resolved(pd, store, reopen, clock):
    n1 = notifier(pd, store, clock)
    a = alert(t=clock.t)
    n1.submit([a])
    run(n1, clock, 5)
    assert [b["event_action"] for b in bodies(pd)] == ["trigger"]
    key = bodies(pd)[0]["dedup_key"]

    store2 = reopen()  # restart: new Notifier on the same store; the evaluator reports again
    n2 = notifier(pd, store2, clock)
    n2.submit([a])
    run(n2, clock, 300)
    assert [b["event_action"] for b in bodies(pd)] == ["trigger"]   # no second trigger

    n2.submit([alert(state="resolved", t=a.starts_at)])
    run(n2, clock, 120)
    assert [b["event_action"] for b in bodies(pd)] == ["trigger", "resolve"]
    assert bodies(pd)[1] == {"routing_key": "R0UTINGKEY", "event_action": "resolve", "dedup_key": key}
    assert key == dedup_key("oncall", n2.dispatcher.tree.key + ':{"alertname":"CheckoutSlow","service_name":"checkout"}')


def test_undelivered_resolve_survives_restart(pd, store, reopen, clock):
    n1 = notifier(pd, store, clock)
    a = alert(t=clock.t)
    n1.submit([a]); run(n1, clock, 5)
    pd.script.replies = [(503, {}, "down")]
    n1.submit([alert(state="resolved", t=a.starts_at)])
    run(n1, clock, 120)
    assert len(n1.outbox) == 1 and bodies(pd)[-1]["event_action"] == "resolve"

    pd.script.replies = [ACCEPTED]
    n2 = notifier(pd, reopen(), clock)   # the evaluator no longer reports the alert at all
    run(n2, clock, 600)
    actions = [b["event_action"] for b in bodies(pd)]
    assert actions[0] == "trigger" and set(actions[1:]) == {"resolve"} and len(n2.outbox) == 0
    assert pd.script.replies == [ACCEPTED]


def test_resolve_given_up_after_resolve_max_age(pd, store, clock, metrics):
    cfg = NotifyConfig.model_validate({
        "receivers": [{"name": "oncall", "pagerduty": {"routing_key_env": "PD_KEY", "api_url": pd.url}}],
        "route": {"group_wait": "0s"}, "resolve_max_age": "10m"})
    n = Notifier(cfg, store, metrics, clock=clock, environ={"PD_KEY": "k"}, rng=random.Random(1))
    a = alert(t=clock.t)
    n.submit([a]); n.tick()
    pd.script.replies = [(500, {}, "down")]
    n.submit([alert(state="resolved", t=a.starts_at)])
    for _ in range(200):
        clock.advance(30); n.tick()
    assert len(n.outbox) == 0
    assert metrics.notifications_failed.labels("oncall", "pagerduty", "expired")._value.get() == 1
