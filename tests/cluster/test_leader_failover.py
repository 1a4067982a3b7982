"""Exactly one page across a leader SIGKILL in the middle of an incident
(docs/cluster.md, "Failover" and "Exactly one page").

Three replicas behind HAProxy, spans from the OpenTelemetry SDK exporters (HTTP
and gRPC) through it. Checkout becomes slow: CheckoutSlow fires, the leader
pages PagerDuty and Slack. The leader is killed with SIGKILL; another replica
takes over within cluster.failover_timeout (measured), continues from the stored
state — no second page for the alert already firing —, and when checkout
recovers sends the resolve. Exactly one trigger and one resolve (same
dedup_key), one Slack message each way; the killed replica comes back as a
follower."""
import time

import pytest

from harness import scenario_config, wait_for
from load import start_load, stop_load

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


def test_leader_sigkill_mid_incident_pages_once_and_resolves_once(cluster_factory, receivers, tmp_path):
    cfg = scenario_config(tmp_path, receivers)
    c = cluster_factory(3, cfg, env=receivers.env)
    leader, epoch = c.leader()
    state = {"latency": 0.9}
    senders = start_load(c.haproxy, "checkout", lambda: state["latency"])
    try:
        wait_for(lambda: receivers.pd_events("trigger") and receivers.slack_texts(), 90, "the first page")
        # The page is recorded (outbox empty) before the kill: this test is about the takeover,
        # not about the one-call window between a receiver's 2xx and its commit.
        wait_for(lambda: leader.metric("tocsin_notification_queue_length") == 0, 30, "the send recorded")
        time.sleep(1.0)    # the alert keeps firing for a moment under the old leader

        killed_at = time.monotonic()
        leader.kill()
        new_leader, new_epoch = c.leader(timeout=60, newer_than=epoch)
        takeover = time.monotonic() - killed_at
        print(f"takeover after SIGKILL of {leader.name}: {takeover:.2f} s (epoch {epoch} -> {new_epoch})")
        assert new_leader is not leader
        assert takeover <= 4.0, f"takeover took {takeover:.1f}s, above cluster.failover_timeout (4s)"

        # The new leader evaluates for a while with the incident still on: no second page.
        wait_for(lambda: new_leader.metric("tocsin_rule_group_last_evaluation_timestamp_seconds") is not None,
                 30, "an evaluation by the new leader")
        time.sleep(4.0)
        assert len(receivers.pd_events("trigger")) == 1 and len(receivers.slack_texts()) == 1

        state["latency"] = 0.05          # checkout recovers
        wait_for(lambda: receivers.pd_events("resolve") and len(receivers.slack_texts()) >= 2, 120,
                 "the resolve from the new leader")
        leader.start()                    # the killed replica returns, as a follower
        c.leader(newer_than=epoch - 1)
        time.sleep(5.0)                   # more than two group intervals: nothing else may arrive
    finally:
        stop_load(senders)

    triggers, resolves = receivers.pd_events("trigger"), receivers.pd_events("resolve")
    assert len(triggers) == 1, triggers
    assert len(resolves) == 1, resolves
    assert triggers[0]["dedup_key"] == resolves[0]["dedup_key"]
    texts = receivers.slack_texts()
    assert len(texts) == 2, texts
    assert "CheckoutSlow" in texts[0] and "RESOLVED" in texts[1].upper()
    # the restarted replica follows the leader that took over
    status = leader.status()
    assert status["isLeader"] is False and status["leader"]["replica"] == new_leader.name
    assert {r["replica"] for r in status["replicas"] if r["live"]} == {r.name for r in c.replicas}
    assert "Traceback" not in c.outputs(), c.outputs()
