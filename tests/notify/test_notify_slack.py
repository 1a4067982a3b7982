"""Slack through the real slack_sdk clients against a local server that answers like Slack."""
import random

import pytest

from alerting.model import Alert
from alerting.notify import Notifier, NotifyConfig
from alerting.notify.retry import RetryPolicy
from notify_fakes import FakeSlack


@pytest.fixture
def slack():
    s = FakeSlack()
    yield s
    s.close()


def webhook_notifier(slack, store, metrics, clock):
    cfg = NotifyConfig.model_validate({
        "receivers": [{"name": "chat", "slack": {"webhook_url_env": "SLACK_HOOK", "api_url": slack.url}}],
        "route": {"group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"}})
    return Notifier(cfg, store, metrics, clock=clock, environ={"SLACK_HOOK": "https://hooks.slack.com/services/T/B/X"},
                    rng=random.Random(1), stale_after=10 ** 9)


def bot_notifier(slack, store, metrics, clock, token="xoxb-good"):
    cfg = NotifyConfig.model_validate({
        "receivers": [{"name": "chat", "slack": {"token_env": "SLACK_TOKEN", "channel": "#alerts",
                                                  "api_url": slack.url + "/api/"}}],
        "route": {"group_by": ["alertname"], "group_wait": "0s", "group_interval": "1m"}})
    return Notifier(cfg, store, metrics, clock=clock, environ={"SLACK_TOKEN": token},
                    retry_policy=RetryPolicy(base=1, cap=4), rng=random.Random(1), stale_after=10 ** 9)


def alert(name, state="firing", t=0.0, **extra):
    return Alert(labels={"alertname": name, "severity": "critical", "service_name": "checkout", "unit": "seconds"},
                 annotations={"summary": f"{name} summary", "description": "p95 is high",
                              "runbook_url": "https://runbooks/x", "dashboard_url": "https://grafana/d/1"},
                 state=state, starts_at=t, ends_at=t + 60 if state == "resolved" else 0.0, value=0.6123,
                 generator_url="http://tocsin/graph")


def titles(messages):
    return [m["blocks"][0]["text"]["text"] for m in messages]


def test_block_kit_message(slack, store, metrics, clock):
    n = webhook_notifier(slack, store, metrics, clock)
    n.submit([alert("CheckoutSlow", t=clock.t)])
    n.tick()
    (msg,) = slack.messages
    assert msg["text"] == ":fire: [FIRING:1] CheckoutSlow"
    body = str(msg["blocks"])
    for part in ("CheckoutSlow summary", "p95 is high", "critical", "612.3ms", "service_name=checkout",
                 "https://runbooks/x|Runbook", "https://grafana/d/1|Dashboard", "<!date^"):
        assert part in body, part


def test_429_for_a_while_every_message_once_in_order(slack, store, metrics, clock):
    n = webhook_notifier(slack, store, metrics, clock)
    slack.throttle, slack.retry_after = 3, "2"
    names = [f"Alert{i}" for i in range(5)]
    for name in names:
        n.submit([alert(name, t=clock.t)])
    requests_at = []
    for _ in range(30):
        before = len(slack.http.requests)
        n.tick()
        requests_at += [clock.t] * (len(slack.http.requests) - before)
        clock.advance(1)
    assert titles(slack.messages) == [f"[FIRING:1] {x}" for x in names]
    # Retry-After: 2 honoured, and never more than one message a second
    assert all(b - a >= 1 for a, b in zip(requests_at, requests_at[1:]))
    assert requests_at[1] - requests_at[0] >= 2
    assert metrics.notifications_failed.labels("chat", "slack", "rate_limited")._value.get() == 3
    assert metrics.notifications.labels("chat", "slack")._value.get() == 5


def test_bot_token_updates_the_original_message_on_resolve(slack, store, metrics, clock):
    n = bot_notifier(slack, store, metrics, clock)
    n.submit([alert("CheckoutSlow", t=clock.t)])
    n.tick()
    assert len(slack.messages) == 1 and slack.messages[0]["channel"] == "#alerts"
    ts = slack.messages[0]["ts"]
    clock.advance(60)
    n.submit([alert("CheckoutSlow", state="resolved", t=clock.t - 60)])
    n.tick()
    assert len(slack.messages) == 1
    (upd,) = slack.updates
    assert upd["ts"] == ts and upd["channel"] == "C0123"
    assert upd["blocks"][0]["text"]["text"] == "[RESOLVED] CheckoutSlow"


def test_bot_429_then_ok(slack, store, metrics, clock):
    n = bot_notifier(slack, store, metrics, clock)
    slack.throttle = 2
    n.submit([alert("A", t=clock.t)])
    for _ in range(10):
        n.tick(); clock.advance(1)
    assert titles(slack.messages) == ["[FIRING:1] A"]
    assert len(slack.http.requests) == 3


def test_invalid_auth_is_not_retried(slack, store, metrics, clock):
    n = bot_notifier(slack, store, metrics, clock, token="xoxb-revoked")
    n.submit([alert("A", t=clock.t)])
    for _ in range(10):
        n.tick(); clock.advance(5)
    assert len(slack.http.requests) == 1 and slack.messages == []
    assert metrics.notifications_failed.labels("chat", "slack", "invalid_auth")._value.get() == 1
    assert len(n.outbox) == 0


def test_send_test(slack, store, metrics, clock):
    n = bot_notifier(slack, store, metrics, clock)
    assert n.send_test("chat") == {"slack": None}
    assert "Test notification" in slack.messages[0]["text"]
    bad = bot_notifier(slack, store, metrics, clock, token="nope")
    assert "invalid_auth" in bad.send_test("chat")["slack"]
