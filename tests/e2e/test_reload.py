"""SIGHUP and POST /-/reload re-read the rules and notify sections, all or nothing."""
import signal
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notify"))
from notify_fakes import FakeHTTP  # noqa: E402
from yaml_writer import dump  # noqa: E402

RULES = """groups:
  - name: always
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(1)
        labels: {severity: page}
"""


def _wait(pred, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_sighup_switches_receivers_and_a_bad_reload_keeps_the_old_ones(server_factory, tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "always.yaml").write_text(RULES)
    hook = FakeHTTP(lambda req: (200, {}, "ok"))
    base = {"rules": {"files": ["rules/*.yaml"]},
            "notify": {"receivers": [{"name": "log", "console": {}}],
                       "route": {"receiver": "log", "group_wait": "0s", "group_interval": "1s"}}}
    srv = server_factory(base)
    assert _wait(lambda: "AlwaysOn" in srv.output()), "the console receiver never printed the alert"
    assert hook.requests == []

    # a reload that cannot work (missing secret) changes nothing
    broken = dict(base, notify={"receivers": [{"name": "pd", "pagerduty": {"routing_key_env": "NOT_SET_ANYWHERE"}}],
                                "route": {"receiver": "pd"}})
    dump(broken, tmp_path / "tocsin.yaml")
    r = httpx.post(f"{srv.api_url}/-/reload")
    assert r.status_code == 500 and "NOT_SET_ANYWHERE" in r.text

    # route to a webhook instead, by SIGHUP as an operator would
    good = dict(base, notify={"receivers": [{"name": "hook", "webhook": {"url": hook.url}}],
                              "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s"}})
    dump(good, tmp_path / "tocsin.yaml")
    srv.proc.send_signal(signal.SIGHUP)
    assert _wait(lambda: len(hook.requests) >= 1), srv.output()[-2000:]
    body = hook.requests[0].json()
    assert body["version"] == "4" and body["alerts"][0]["labels"]["alertname"] == "AlwaysOn"
    assert "rules and notifications reloaded" in srv.output()
    hook.close()
