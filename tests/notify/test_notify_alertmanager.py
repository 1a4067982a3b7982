"""Forwarding to a real Prometheus Alertmanager, when one is installed
(apt-get install prometheus-alertmanager)."""
import shutil
import socket
import subprocess
import time

import httpx
import pytest

from alerting.model import Alert
from alerting.notify import Notifier, NotifyConfig
from alerting.notify.alertmanager.alertmanager import postable
from collector.selfmetrics import SelfMetrics
from notify_fakes import FakeHTTP

BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def alertmanager(tmp_path):
    if BINARY is None:
        pytest.skip("Alertmanager not installed (apt-get install -y prometheus-alertmanager)")
    cfg = tmp_path / "am.yml"
    cfg.write_text("route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n")
    port = free_port()
    proc = subprocess.Popen([BINARY, f"--config.file={cfg}", f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 20
        while True:
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"alertmanager did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_forwarded_alert_shows_in_alertmanager(alertmanager, tmp_path):
    from notify_fakes import DictStore
    cfg = NotifyConfig.model_validate({"receivers": [{"name": "am", "alertmanager": {"url": alertmanager}}],
                                       "route": {"group_wait": "0s", "group_interval": "1s"}})
    n = Notifier(cfg, DictStore(), SelfMetrics())
    now = time.time()
    a = Alert(labels={"alertname": "CheckoutSlow", "service_name": "checkout", "severity": "critical"},
              annotations={"summary": "p95 above 500ms"}, starts_at=now - 60, value=0.7,
              generator_url="http://tocsin/graph")
    n.submit([a])
    assert n.tick() == 1
    got = httpx.get(alertmanager + "/api/v2/alerts").json()
    assert [x["labels"] for x in got] == [a.labels]
    assert got[0]["annotations"] == a.annotations and got[0]["status"]["state"] == "active"
    assert got[0]["generatorURL"] == "http://tocsin/graph"

    time.sleep(1.1)   # still firing: re-sent every group_interval
    n.submit([a])
    assert n.tick() == 1

    time.sleep(1.1)
    n.submit([Alert(labels=a.labels, state="resolved", starts_at=a.starts_at, ends_at=time.time() - 1)])
    assert n.tick() == 1
    assert httpx.get(alertmanager + "/api/v2/alerts", params={"active": "true"}).json() == []


def test_resends_while_firing_with_ends_at_ahead(tmp_path):
    hook = FakeHTTP(lambda req: (200, {}, ""))
    try:
        from notify_fakes import DictStore, FakeClock
        clock = FakeClock()
        cfg = NotifyConfig.model_validate({"receivers": [{"name": "am", "alertmanager": {"api_url": hook.url}}],
                                           "route": {"group_wait": "0s", "group_interval": "1m"}})
        n = Notifier(cfg, DictStore(), SelfMetrics(), clock=clock)
        a = Alert(labels={"alertname": "X"}, starts_at=clock.t)
        for _ in range(3):
            n.submit([a]); n.tick(); clock.advance(60)
        assert len(hook.requests) == 3 and hook.requests[0].path == "/api/v2/alerts"
        assert postable(a, 100.0, 60)["endsAt"] == "1970-01-01T00:05:40.000Z"
    finally:
        hook.close()
