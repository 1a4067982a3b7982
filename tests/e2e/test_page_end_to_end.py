"""From spans to a page and back, with the example rule of rules/latency.yaml:
a latency spike sent with the OpenTelemetry SDK fires CheckoutSlow, Slack and
PagerDuty (local servers answering like them) receive one message each; when
latency goes back to normal, one resolve each."""
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from serverproc import REPO
from spans import exporter, send_spans

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notify"))
from notify_fakes import FakeHTTP, FakeSlack  # noqa: E402


@pytest.mark.timeout(420)
def test_spike_pages_slack_and_pagerduty_once_then_resolves(server_factory, tmp_path):
    shutil.copytree(REPO / "rules", tmp_path / "rules")
    slack = FakeSlack()
    pd = FakeHTTP(lambda req: (202, {}, {"status": "success", "message": "Event processed",
                                         "dedup_key": req.json().get("dedup_key")}))
    cfg = {
        "rules": {"files": ["rules/*.yaml"]},
        "notify": {
            "receivers": [{"name": "oncall",
                           "slack": {"webhook_url_env": "E2E_SLACK_WEBHOOK", "api_url": slack.url},
                           "pagerduty": {"routing_key_env": "E2E_PD_KEY", "api_url": pd.url}}],
            "route": {"receiver": "oncall", "group_by": ["alertname", "service_name"], "group_wait": "1s",
                      "group_interval": "5s", "repeat_interval": "4h",
                      # the critical level pages; the warning level of the same rule is inhibited by it
                      "matchers": []},
            "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                               "equal": ["alertname", "service_name"]}],
        },
    }
    srv = server_factory(cfg, env={"E2E_SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B0/x",
                                   "E2E_PD_KEY": "0123456789abcdef0123456789abcdef"})
    state = {"slow": True}
    stop = threading.Event()
    rng = np.random.default_rng(3)

    def traffic():
        while not stop.is_set():
            base = 0.9 if state["slow"] else 0.08
            send_spans(exporter("grpc", f"http://{srv.grpc}"), "checkout",
                       rng.lognormal(np.log(base), 0.2, 40))
            stop.wait(1.0)

    t = threading.Thread(target=traffic, daemon=True)
    t0 = time.time()
    t.start()
    try:
        deadline = t0 + 150
        triggers = []
        while time.time() < deadline:
            triggers = [r for r in pd.requests if r.json().get("event_action") == "trigger"]
            if triggers and slack.messages:
                break
            time.sleep(0.5)
        paged_after = time.time() - t0
        assert triggers, "PagerDuty was never paged:\n" + srv.output()[-3000:]
        assert slack.messages, "Slack never got a message"
        state["slow"] = False
        deadline = time.time() + 180
        while time.time() < deadline:
            resolves = [r for r in pd.requests if r.json().get("event_action") == "resolve"]
            if resolves and len(slack.messages) >= 2:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        t.join(10)

    time.sleep(6)  # one more group_interval: nothing else may arrive
    triggers = [r.json() for r in pd.requests if r.json().get("event_action") == "trigger"]
    resolves = [r.json() for r in pd.requests if r.json().get("event_action") == "resolve"]
    assert len(triggers) == 1, triggers
    assert len(resolves) == 1, resolves
    assert triggers[0]["dedup_key"] == resolves[0]["dedup_key"]
    assert triggers[0]["payload"]["severity"] == "critical"
    assert "CheckoutSlow" in triggers[0]["payload"]["summary"]
    assert len(slack.messages) == 2, slack.messages
    first, last = (str(m) for m in slack.messages)
    assert "CheckoutSlow" in first and "RESOLVED" in last.upper()
    # rule: for 1m, group interval 15s; page within for + one evaluation interval + 5 s (+ group_wait)
    print(f"spike to page: {paged_after:.1f} s")
    assert paged_after <= 60 + 15 + 5 + 1 + 5, paged_after  # + the time for the first requests to reach min_count
    slack.close()
    pd.close()
