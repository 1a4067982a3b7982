"""A real Prometheus 2.42 whose ``alerting.alertmanagers`` points at Tocsin:
its firing rule's alerts are routed, grouped, silenced and delivered by
Tocsin's notify pipeline to a local server answering like Slack, and resolved
when the rule stops firing. Prometheus authenticates with Tocsin's admin token."""
from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest

from notify_fakes import FakeHTTP, FakeSlack

AMTOOL = shutil.which("amtool")


class Exporter:
    """A scrape target whose values the test sets."""

    def __init__(self):
        self.lock = threading.Lock()
        self.values = {'probe_failing{target="a"}': 1, 'probe_failing{target="b"}': 1, "noisy_thing": 1}
        self.http = FakeHTTP(self.handle)

    def handle(self, req):
        with self.lock:
            body = "".join(f"{k} {v}\n" for k, v in self.values.items())
        return 200, {"Content-Type": "text/plain; version=0.0.4"}, body

    def set(self, key, value):
        with self.lock:
            self.values[key] = value


def wait_for(pred, timeout, what, out=lambda: ""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{out()}")


@pytest.mark.timeout(180)
def test_prometheus_alerts_are_grouped_silenced_and_delivered(server_factory, prometheus_factory, tmp_path):
    slack = FakeSlack()
    exporter = Exporter()
    srv = server_factory({
        "rules": {"files": []},
        "auth": {"admin_tokens": [{"token_env": "ADMIN_TOKEN"}]},
        "notify": {
            "receivers": [{"name": "oncall", "slack": {"webhook_url_env": "SLACK_URL", "api_url": slack.url}}],
            "route": {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "1s",
                      "group_interval": "2s", "repeat_interval": "1h"},
        },
    }, env={"ADMIN_TOKEN": "prom-admin-token", "SLACK_URL": "https://hooks.slack.com/services/T0/B0/x"})
    if AMTOOL:   # silence one of the two rules before Prometheus starts (amtool needs the token too)
        hc = tmp_path / "amtool-http.yml"
        hc.write_text("authorization:\n  credentials: prom-admin-token\n")
        r = subprocess.run([AMTOOL, f"--http.config.file={hc}", f"--alertmanager.url={srv.api_url}", "silence",
                            "add", "alertname=NoisyThing", "-c", "known noisy"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    else:
        with srv.client() as c:
            r = c.post("/api/v1/silences", headers={"Authorization": "Bearer prom-admin-token"}, json={
                "matchers": ['alertname="NoisyThing"'], "endsAt": "2100-01-01T00:00:00Z", "createdBy": "t",
                "comment": "known noisy"})
            assert r.status_code == 200, r.text
    token = tmp_path / "token"
    token.write_text("prom-admin-token\n")
    exporter_addr = exporter.http.url.removeprefix("http://")
    prom = prometheus_factory(
        {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
         "scrape_configs": [{"job_name": "probe", "static_configs": [{"targets": [exporter_addr]}]}],
         "alerting": {"alertmanagers": [{"api_version": "v2", "authorization": {"credentials_file": str(token)},
                                         "static_configs": [{"targets": [srv.api]}]}]}},
        rules={"groups": [{"name": "probes", "interval": "1s", "rules": [
            {"alert": "ProbeFailing", "expr": "probe_failing > 0", "labels": {"severity": "page"},
             "annotations": {"summary": "probe of {{ $labels.target }} failing"}},
            {"alert": "NoisyThing", "expr": "noisy_thing > 0"}]}]})

    first = wait_for(lambda: slack.messages, 60, "a Slack message", lambda: srv.output()[-3000:] + prom.output())
    msg = first[0]
    assert "[FIRING:2] ProbeFailing" in msg["text"], msg   # both targets in one group, one message
    blocks = str(msg["blocks"])
    assert "probe of a failing" in blocks and "probe of b failing" in blocks
    with srv.client() as c:
        alerts = c.get("/api/v2/alerts", headers={"Authorization": "Bearer prom-admin-token"}).json()
        names = sorted(a["labels"]["alertname"] for a in alerts)
        assert names == ["NoisyThing", "ProbeFailing", "ProbeFailing"]
        noisy = [a for a in alerts if a["labels"]["alertname"] == "NoisyThing"][0]
        assert noisy["status"]["state"] == "suppressed" and noisy["generatorURL"].startswith("http://")
        assert all(a["labels"]["job"] == "probe" for a in alerts)

    exporter.set('probe_failing{target="a"}', 0)
    exporter.set('probe_failing{target="b"}', 0)
    resolved = wait_for(lambda: [m for m in slack.messages if "RESOLVED" in m["text"]], 60, "the resolve",
                        lambda: srv.output()[-3000:])
    assert "[RESOLVED] ProbeFailing" in resolved[0]["text"]
    time.sleep(3)   # more group intervals: nothing else arrives, and never NoisyThing
    texts = [m["text"] for m in slack.messages]
    assert not any("NoisyThing" in t for t in texts), texts
    assert len([t for t in texts if "FIRING" in t]) == 1, texts
    assert len([t for t in texts if "RESOLVED" in t]) == 1, texts
    slack.close()
    exporter.http.close()
