"""Silence API over a real uvicorn server, driven by the CLI; notify check/test."""
import argparse
import socket
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from alerting.model import Alert
from alerting.notify import Notifier, NotifyConfig
from alerting.notify.api import routes
from alerting.notify.cli import register
from collector.selfmetrics import SelfMetrics
from notify_fakes import DictStore, FakeHTTP


def cli(*argv) -> int:
    p = argparse.ArgumentParser(prog="tocsin")
    register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def server():
    notifier = Notifier(NotifyConfig(), DictStore(), SelfMetrics())
    app = Starlette(routes=routes(SimpleNamespace(notifier=notifier)))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    t = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", notifier
    srv.should_exit = True
    t.join(5)


def test_silence_add_list_expire(server, capsys, monkeypatch):
    url, notifier = server
    monkeypatch.setenv("TOCSIN_API_TOKEN", "t0k")
    assert cli("silence", "add", 'alertname="CheckoutSlow"', 'service_name=~"checkout|pay"', "--duration", "2h",
               "--comment", "deploy", "--author", "ana", "--url", url) == 0
    sid = capsys.readouterr().out.strip()
    s = notifier.silences.get(sid)
    assert s.created_by == "ana" and 7199 < s.ends_at - s.starts_at < 7201
    assert s.mutes({"alertname": "CheckoutSlow", "service_name": "pay"}, time.time())
    assert not s.mutes({"alertname": "CheckoutSlow", "service_name": "search"}, time.time())

    got = httpx.get(url + "/api/v1/silences").json()
    assert got[0]["id"] == sid and got[0]["status"]["state"] == "active"
    assert got[0]["matchers"][1] == {"name": "service_name", "value": "checkout|pay", "isRegex": True,
                                     "isEqual": True}
    assert cli("silence", "list", "--url", url) == 0
    assert sid in capsys.readouterr().out

    assert cli("silence", "expire", sid, "--url", url) == 0
    assert httpx.get(url + "/api/v1/silences").json()[0]["status"]["state"] == "expired"
    assert cli("silence", "expire", "nope", "--url", url) == 1


def test_api_rejects_bad_silences(server):
    url, _ = server
    r = httpx.post(url + "/api/v1/silences", json={"matchers": [{"name": "a", "value": ".*", "isRegex": True}],
                                                   "endsAt": "2999-01-01T00:00:00Z", "createdBy": "x",
                                                   "comment": "y"})
    assert r.status_code == 400 and "every alert" in r.json()["error"]
    r = httpx.post(url + "/api/v1/silences", json={"matchers": [{"name": "a", "value": "b"}], "createdBy": "x",
                                                   "comment": "y"})
    assert r.status_code == 400 and "endsAt" in r.json()["error"]
    assert httpx.delete(url + "/api/v1/silences/unknown").status_code == 404


def test_notify_check(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("api: {listen: 127.0.0.1:9099}\nnotify:\n  receivers:\n    - name: log\n      console: {}\n"
                    "  route:\n    receiver: log\n    group_by: [alertname]\n")
    assert cli("notify", "check", "--config", str(good)) == 0
    assert "notify ok: 1 receiver, 1 route, 0 inhibit rules" in capsys.readouterr().out
    assert cli("notify", "check", "--config", str(tmp_path / "none.yaml")) == 1
    assert "cannot read" in capsys.readouterr().err

    bad = tmp_path / "bad.yaml"
    bad.write_text("notify:\n  receivers:\n    - name: log\n      console: {}\n"
                   "  route:\n    receiver: log\n    group_wiat: 30s\n")
    assert cli("notify", "check", "--config", str(bad)) == 1
    err = capsys.readouterr().err
    assert f'{bad}:7:5: notify.route.group_wiat: unknown key; did you mean "group_wait"?' in err

    secret = tmp_path / "secret.yaml"
    secret.write_text("notify:\n  receivers:\n    - name: pd\n      pagerduty: {routing_key_env: TOCSIN_TEST_NO_SUCH_VAR}\n")
    assert cli("notify", "check", "--config", str(secret)) == 1
    assert "notify.receivers[0].pagerduty.routing_key_env" in capsys.readouterr().err


def test_notify_test_sends(tmp_path, capsys):
    hook = FakeHTTP(lambda req: (200, {}, ""))
    try:
        f = tmp_path / "t.yaml"
        f.write_text(f"notify:\n  receivers:\n    - name: hook\n      webhook: {{url: '{hook.url}/x'}}\n")
        assert cli("notify", "test", "hook", "--config", str(f)) == 0
        assert hook.requests[0].json()["alerts"][0]["labels"]["alertname"] == "TocsinTestAlert"
        assert cli("notify", "test", "other", "--config", str(f)) == 1
    finally:
        hook.close()


def test_background_thread_delivers(tmp_path):
    hook = FakeHTTP(lambda req: (200, {}, ""))
    try:
        cfg = NotifyConfig.model_validate({"receivers": [{"name": "hook", "webhook": {"url": hook.url}}],
                                           "route": {"group_wait": "0s"}})
        n = Notifier(cfg, DictStore(), SelfMetrics(), interval=0.05)
        n.start()
        n.submit([Alert(labels={"alertname": "X"}, starts_at=time.time())])
        deadline = time.time() + 5
        while not hook.requests and time.time() < deadline:
            time.sleep(0.02)
        n.stop()
        assert len(hook.requests) == 1
    finally:
        hook.close()


def test_cli_sends_admin_token(monkeypatch, capsys):
    api = FakeHTTP(lambda req: (200, {}, []))
    try:
        monkeypatch.setenv("TOCSIN_API_TOKEN", "s3cret")
        assert cli("silence", "list", "--url", api.url) == 0
        assert api.requests[0].headers["authorization"] == "Bearer s3cret"
        assert api.requests[0].path == "/api/v1/silences"
    finally:
        api.close()
