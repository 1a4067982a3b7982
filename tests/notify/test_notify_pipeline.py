"""Grouping timings, inhibition and silences, observed at a real webhook endpoint."""
import pytest

from alerting.model import Alert
from alerting.notify import Notifier, NotifyConfig
from notify_fakes import FakeHTTP


@pytest.fixture
def hook():
    h = FakeHTTP(lambda req: (200, {}, "ok"))
    yield h
    h.close()


def make(hook, store, metrics, clock, **route):
    cfg = NotifyConfig.model_validate({
        "receivers": [{"name": "hook", "webhook": {"url": hook.url + "/hook"}}],
        "route": {"receiver": "hook", "group_by": ["alertname"], "group_wait": "30s", "group_interval": "5m",
                  "repeat_interval": "1h", **route},
        "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                           "equal": ["service_name"]}],
    })
    return Notifier(cfg, store, metrics, clock=clock, stale_after=10 ** 9)


def alert(name="CheckoutSlow", state="firing", starts=0.0, ends=0.0, **labels):
    return Alert(labels={"alertname": name, "severity": "warning", "service_name": "checkout", **labels},
                 annotations={"summary": "p95 above 500ms"}, state=state, starts_at=starts, ends_at=ends, value=0.61)


def sent(hook):
    return [r.json() for r in hook.requests]


def test_group_wait_interval_repeat_and_resolve(hook, store, metrics, clock):
    n = make(hook, store, metrics, clock)
    t0 = clock.t
    a = alert(starts=t0, route="/a")
    n.submit([a])
    clock.advance(29); n.tick()
    assert sent(hook) == []                     # still in group_wait
    clock.advance(1); n.tick()
    assert len(sent(hook)) == 1
    first = sent(hook)[0]
    assert first["version"] == "4" and first["status"] == "firing" and first["groupLabels"] == {"alertname": "CheckoutSlow"}
    assert [x["fingerprint"] for x in first["alerts"]] == [a.fingerprint]
    assert first["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"

    b = alert(starts=clock.advance(10), route="/b")  # joins the group: waits for group_interval
    n.submit([a, b])
    clock.t = t0 + 30 + 299; n.tick()
    assert len(sent(hook)) == 1
    clock.t = t0 + 30 + 300; n.tick()
    assert len(sent(hook)) == 2 and len(sent(hook)[1]["alerts"]) == 2

    for k in range(1, 12):                       # nothing new: quiet until repeat_interval (1h)
        clock.t = t0 + 330 + 300 * k; n.submit([a, b]); n.tick()
    assert len(sent(hook)) == 2
    clock.t = t0 + 330 + 3600; n.submit([a, b]); n.tick()
    assert len(sent(hook)) == 3                  # the repeat

    clock.advance(5)
    n.submit([a, alert(state="resolved", starts=b.starts_at, ends=clock.t, route="/b")])
    clock.advance(300); n.tick()
    last = sent(hook)[-1]
    assert len(sent(hook)) == 4 and last["status"] == "firing"
    assert {x["status"] for x in last["alerts"]} == {"firing", "resolved"}
    assert metrics.notifications.labels("hook", "webhook")._value.get() == 4


def test_old_alert_is_not_held_for_group_wait(hook, store, metrics, clock):
    n = make(hook, store, metrics, clock)
    n.submit([alert(starts=clock.t - 600)])
    n.tick()
    assert len(sent(hook)) == 1


def test_alerts_resolving_within_group_wait_send_nothing(hook, store, metrics, clock):
    n = make(hook, store, metrics, clock)
    n.submit([alert(starts=clock.t)])
    clock.advance(10)
    n.submit([alert(state="resolved", starts=clock.t - 10, ends=clock.t)])
    clock.advance(60); n.tick()
    assert sent(hook) == []


def test_groups_by_label(hook, store, metrics, clock):
    n = make(hook, store, metrics, clock)
    n.submit([alert("A", starts=clock.t), alert("B", starts=clock.t)])
    clock.advance(30); n.tick()
    assert sorted(r["groupLabels"]["alertname"] for r in sent(hook)) == ["A", "B"]


def test_inhibition(hook, store, metrics, clock):
    n = make(hook, store, metrics, clock, group_by=["..."])
    crit = alert("CheckoutDown", severity="critical", starts=clock.t)
    warn = alert("CheckoutSlow", starts=clock.t)
    other = alert("PaySlow", service_name="pay", starts=clock.t)
    n.submit([crit, warn, other])
    clock.advance(30); n.tick()
    names = sorted(r["alerts"][0]["labels"]["alertname"] for r in sent(hook))
    assert names == ["CheckoutDown", "PaySlow"]   # CheckoutSlow inhibited (same service_name)

    # the source resolves: the target is notified at its group's next flush
    clock.advance(10)
    n.submit([alert("CheckoutDown", severity="critical", state="resolved", starts=crit.starts_at, ends=clock.t),
              warn, other])
    clock.advance(300); n.tick()
    names = [r["alerts"][0]["labels"]["alertname"] for r in sent(hook)[2:] if r["status"] == "firing"]
    assert names == ["CheckoutSlow"]


def test_silence_mutes_until_expired(hook, store, metrics, clock):
    from alerting.notify.matchers import parse_matchers
    from alerting.notify.silences import Silence

    n = make(hook, store, metrics, clock)
    s = n.silences.set(Silence(id="", matchers=tuple(parse_matchers(['alertname="CheckoutSlow"'])),
                               starts_at=clock.t, ends_at=clock.t + 3600, created_by="me", comment="deploy",
                               updated_at=clock.t))
    a = alert(starts=clock.t)
    n.submit([a, alert("Other", starts=clock.t)])
    clock.advance(30); n.tick()
    assert [r["groupLabels"]["alertname"] for r in sent(hook)] == ["Other"]
    clock.advance(300); n.submit([a]); n.tick()
    assert len(sent(hook)) == 1

    n.silences.expire(s.id)
    assert n.silences.get(s.id).state(clock.t) == "expired"
    clock.advance(300); n.submit([a]); n.tick()
    assert [r["groupLabels"]["alertname"] for r in sent(hook)] == ["Other", "CheckoutSlow"]
    # silences are persisted
    again = make(hook, store, metrics, clock)
    assert again.silences.get(s.id) is not None


def test_stale_alert_is_resolved(hook, store, metrics, clock):
    cfg = NotifyConfig.model_validate({"receivers": [{"name": "hook", "webhook": {"url": hook.url}}],
                                       "route": {"group_wait": "0s", "group_interval": "1m"}})
    n = Notifier(cfg, store, metrics, clock=clock, stale_after=600)
    n.submit([alert(starts=clock.t)])
    n.tick()
    clock.advance(601); n.tick()
    clock.advance(60); n.tick()
    assert [r["status"] for r in sent(hook)] == ["firing", "resolved"]


def test_retry_after_in_seconds_and_as_http_date():
    from alerting.notify.retry import parse_retry_after

    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 1.5 ") == 1.5
    now = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:50 GMT", now=now) == 30.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now=now) == 0.0  # in the past: retry now
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
