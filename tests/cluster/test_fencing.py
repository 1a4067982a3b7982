"""A leader that stalled can never send once another replica took over
(docs/cluster.md, "Fencing"), and the one duplicate window: a receiver that
processed a request whose sender stalled before recording it.

The leader is frozen with SIGSTOP (a GC pause, a VM migration, a debugger):
its socket stays open, so only PostgreSQL's idle_session_timeout frees its lock;
another replica takes over within cluster.failover_timeout (measured). Woken
with SIGCONT, the old leader finds its lease over and its epoch fenced: nothing
it still had queued or evaluated is sent."""
import threading
import time

import pytest

from harness import scenario_config, wait_for
from load import start_load, stop_load

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


def _since(status: dict) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(status["leader"]["since"].replace("Z", "+00:00")).timestamp()


def test_a_stalled_leader_woken_after_the_takeover_sends_nothing(cluster_factory, receivers, tmp_path):
    cfg = scenario_config(tmp_path, receivers)
    c = cluster_factory(3, cfg, env=receivers.env)
    leader, epoch = c.leader()
    state = {"latency": 0.9}
    senders = start_load(c.haproxy, "checkout", lambda: state["latency"])
    try:
        wait_for(lambda: receivers.pd_events("trigger") and receivers.slack_texts(), 90, "the first page")
        wait_for(lambda: leader.metric("tocsin_notification_queue_length") == 0, 30, "the send recorded")
        frozen_at = time.time()
        leader.freeze()
        new_leader, new_epoch = c.leader(timeout=60, newer_than=epoch)
        takeover = _since(new_leader.status()) - frozen_at
        print(f"takeover after SIGSTOP of {leader.name}: {takeover:.2f} s (epoch {epoch} -> {new_epoch})")
        assert takeover <= 4.0, f"takeover took {takeover:.1f}s, above cluster.failover_timeout (4s)"

        state["latency"] = 0.05      # recovery while the old leader is frozen: the new one resolves
        wait_for(lambda: receivers.pd_events("resolve") and len(receivers.slack_texts()) >= 2, 120,
                 "the resolve from the new leader")
        leader.thaw()   # the old leader wakes up, believing it leads
        wait_for(lambda: leader.status()["isLeader"] is False, 30, "the woken replica following")
        time.sleep(5.0)
    finally:
        stop_load(senders)
    assert len(receivers.pd_events("trigger")) == 1 and len(receivers.pd_events("resolve")) == 1
    assert len(receivers.slack_texts()) == 2, receivers.slack_texts()
    status = leader.status()
    assert status["leader"]["replica"] == new_leader.name and status["epoch"] == new_epoch
    assert "is no longer the leader" in leader.output()
    assert "Traceback" not in c.outputs()


def test_the_duplicate_window_is_one_call_and_pagerduty_dedups_it(cluster_factory, receivers, tmp_path):
    """The leader freezes while PagerDuty processes its resolve: PagerDuty has it,
    the leader never records it. The next leader cannot send that entry while the
    frozen one's transaction holds it (never two senders at once); once PostgreSQL
    ends that transaction, it sends it again — the same dedup_key, so PagerDuty
    opens no second incident. Slack, not in flight then, gets one message each way."""
    arrived, release = threading.Event(), threading.Event()
    handler = receivers.pd.handler

    def pd(req):
        if req.json().get("event_action") == "resolve" and not release.is_set():
            arrived.set()
            release.wait(60)                  # the sender freezes meanwhile
        return handler(req)

    receivers.pd.handler = pd
    cfg = scenario_config(tmp_path, receivers)
    for r in cfg["notify"]["receivers"]:
        r["pagerduty"]["timeout"] = 3.0       # a claim is held at most this + 5 s by a frozen leader
    c = cluster_factory(3, cfg, env=receivers.env)
    leader, epoch = c.leader()
    state = {"latency": 0.9}
    senders = start_load(c.haproxy, "checkout", lambda: state["latency"])
    try:
        wait_for(lambda: receivers.pd_events("trigger"), 90, "the first page")
        wait_for(lambda: leader.metric("tocsin_notification_queue_length") == 0, 30, "the send recorded")
        state["latency"] = 0.05
        assert arrived.wait(120), "the resolve never reached PagerDuty"
        leader.freeze()           # frozen inside the claim's transaction, mid-call
        release.set()                         # PagerDuty processes it and answers into the void
        new_leader, _ = c.leader(timeout=60, newer_than=epoch)
        wait_for(lambda: len(receivers.pd_events("resolve")) >= 2, 60, "the resend after the held claim ends")
        wait_for(lambda: len(receivers.slack_texts()) >= 2, 60, "Slack's resolve")
        leader.thaw()
        time.sleep(5.0)
    finally:
        stop_load(senders)
    triggers, resolves = receivers.pd_events("trigger"), receivers.pd_events("resolve")
    assert len(triggers) == 1 and len(resolves) == 2, (triggers, resolves)
    assert {r["dedup_key"] for r in resolves} == {triggers[0]["dedup_key"]}     # one incident
    assert len(receivers.slack_texts()) == 2, receivers.slack_texts()
