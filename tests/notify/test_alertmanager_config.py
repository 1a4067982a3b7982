"""`notify.alertmanager_config`: a real-world alertmanager.yml (testdata/alertmanager,
every feature; real Alertmanager's `amtool check-config` accepts it) read as
Alertmanager reads it; `tocsin notify check` lists every problem of a bad one
with file:line:col; time intervals in both config forms; notification templates."""
from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alerting.model import Alert
from alerting.notify import Notifier, NotifyConfig
from alerting.notify.amconfig.load import load_file
from alerting.notify.cli import cmd_check
from alerting.notify.notifytemplate import TemplateSet, check_template, notification_data
from alerting.notify.routing import build_tree
from alerting.notify.timeintervals import IntervalSet, NamedTimeInterval
from alerting.notify.types import Notification
from notify_fakes import FakeHTTP

DATA = Path(__file__).parent / "testdata" / "alertmanager"
AMTOOL = shutil.which("amtool")


@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (apt-get install prometheus-alertmanager)")
def test_fixture_is_a_valid_alertmanager_config_and_the_bad_one_is_not():
    ok = subprocess.run([AMTOOL, "check-config", str(DATA / "alertmanager.yml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run([AMTOOL, "check-config", str(DATA / "bad" / "alertmanager.yml")], capture_output=True,
                         text=True)
    assert bad.returncode != 0


def test_real_world_file_translates_as_alertmanager_reads_it():
    loaded = load_file(DATA / "alertmanager.yml", overrides={"legacy-email"})
    assert loaded.errors == []
    t = loaded.translated
    assert [r.name for r in t.receivers] == ["default-slack", "oncall-pager", "payments-pager", "db-team",
                                             "support-hook", "blackhole"]
    assert t.resolve_timeout == 300
    cfg = NotifyConfig.model_validate({"alertmanager_config": str(DATA / "alertmanager.yml"),
                                       "receivers": [{"name": "legacy-email",
                                                      "alertmanager": {"url": "http://am:9093"}}]})
    tree = build_tree(cfg.route)

    def receivers(**labels):
        return [n.receiver for n in tree.match(labels)]

    cases = [({"alertname": "Watchdog"}, ["blackhole"]),
             ({"alertname": "X", "severity": "critical", "service": "api"}, ["oncall-pager"]),
             ({"alertname": "X", "severity": "critical", "service": "payments"}, ["payments-pager"]),
             ({"alertname": "X", "severity": "critical", "team": "db"}, ["oncall-pager"]),
             ({"alertname": "X", "severity": "critical", "team": "support"}, ["oncall-pager", "support-hook"]),
             ({"alertname": "X", "severity": "warning", "team": "db"}, ["db-team"]),
             ({"alertname": "X", "team": "support"}, ["support-hook"]),
             ({"alertname": "X", "env": "legacy"}, ["legacy-email"]),
             ({"alertname": "X"}, ["default-slack"])]
    for labels, want in cases:
        assert receivers(**labels) == want, labels
        if AMTOOL:   # Alertmanager's own routing decides the same
            r = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={DATA / 'alertmanager.yml'}",
                                *(f"{k}={v}" for k, v in labels.items())], capture_output=True, text=True)
            assert r.stdout.split()[-1].split(",") == want, (labels, r.stdout)
    payments = tree.children[1].children[0]
    assert payments.group_by is None and payments.mute_time_intervals == ("holidays",)   # group_by: ['...']
    assert tree.children[2].group_wait == 60 and tree.children[2].group_interval == 300   # inherited
    db = cfg.receiver("db-team")
    assert len(db.configs("slack")) == 2 and db.configs("slack")[1].title.startswith("[{{ .Status")
    pd = cfg.receiver("oncall-pager").configs("pagerduty")[0]
    assert pd.routing_key_file == str(DATA / "secrets" / "pagerduty-routing-key")   # relative to the file
    assert pd.api_url == "https://events.pagerduty.com"
    assert cfg.receiver("payments-pager").configs("pagerduty")[0].routing_key.get_secret_value() == \
        "0123456789abcdef0123456789abcdef"
    hook = cfg.receiver("support-hook").configs("webhook")[0]
    assert hook.bearer_token_file.endswith("secrets/support-token") and hook.max_alerts == 10
    assert len(cfg.inhibit_rules) == 2 and [str(m) for m in cfg.inhibit_rules[1].target_matchers] == \
        ['alertname=~".+"']
    assert [ti.name for ti in cfg.time_intervals] == ["business-hours", "nights-and-weekends", "holidays"]
    # secrets stay out of every dump
    assert "0123456789abcdef" not in str(cfg.model_dump()) and "0123456789abcdef" not in repr(cfg)


def test_check_lists_every_problem_with_file_line_col(tmp_path, capsys):
    (tmp_path / "tocsin.yaml").write_text(f"notify:\n  alertmanager_config: {DATA / 'bad' / 'alertmanager.yml'}\n")
    assert cmd_check(type("A", (), {"config": str(tmp_path / "tocsin.yaml")})) == 1
    err = capsys.readouterr().err
    path = str(DATA / "bad" / "alertmanager.yml")
    expected = [
        ("2:3", "global.resolve_timeout", "is not a duration"),
        ("8:18", "route.routes[0].matchers[0]", "invalid matcher"),
        ("11:9", "route.routes[1].match_re.service", "invalid regular expression"),
        ("12:7", "route.routes[1].receiver", "no receiver named 'nobody'"),
        ("15:29", "route.routes[2].mute_time_intervals[0]", "no time interval named 'weekend'"),
        ("23:9", "receivers[1].pagerduty_configs[0].service_key", "Events API v1"),
        ("25:5", "receivers[2].email_configs", "forward to it"),
        ("27:1", "inhibit_rule", "unknown key"),
        ("30:5", "inhibit_rules[0]", "needs source and target matchers"),
        ("35:13", "time_intervals[0].time_intervals[0].times[0].start_time", "not a time of day"),
    ]
    errors = [line for line in err.splitlines() if line.startswith(path) and ": warning: " not in line]
    assert len(errors) == len(expected), err
    for line, (pos, key, text) in zip(errors, expected):
        assert line.startswith(f"{path}:{pos}: {key}: ") and text in line, line
    warnings = [line for line in err.splitlines() if ": warning: " in line]
    assert any(f"{path}:3:3: warning: global.slack_api_url: a secret written in the file" in w
               and "slack_api_url_file" in w for w in warnings), warnings
    assert any(":20:9: warning: receivers[0].slack_configs[0].title: template not supported" in w and "tmpl" in w
               for w in warnings), warnings
    assert "10 errors, 2 warnings" in err
    assert "Traceback" not in err


def test_check_accepts_the_real_world_file_with_warnings(tmp_path, capsys, monkeypatch):
    shutil.copytree(DATA, tmp_path / "am")
    (tmp_path / "tocsin.yaml").write_text("notify:\n  alertmanager_config: am/alertmanager.yml\n  receivers:\n"
                                          "    - {name: legacy-email, alertmanager: {url: 'http://am:9093'}}\n")
    monkeypatch.chdir(tmp_path)
    assert cmd_check(type("A", (), {"config": "tocsin.yaml"})) == 0
    out = capsys.readouterr()
    assert "notify ok (from am/alertmanager.yml): 7 receivers, 7 routes, 2 inhibit rules, 3 time intervals, " \
           "7 warnings" in out.out
    assert "am/alertmanager.yml:72:9: warning: receivers[2].pagerduty_configs[0].routing_key: a secret written " \
           "in the file" in out.err and "prefer routing_key_file" in out.err
    # without the native receiver, the email receiver is an error naming the alternative
    (tmp_path / "tocsin.yaml").write_text("notify:\n  alertmanager_config: am/alertmanager.yml\n")
    assert cmd_check(type("A", (), {"config": "tocsin.yaml"})) == 1
    assert "Tocsin does not send email notifications" in capsys.readouterr().err
    # a secret file that does not exist: named by its key
    (tmp_path / "am" / "secrets" / "support-token").unlink()
    (tmp_path / "tocsin.yaml").write_text("notify:\n  alertmanager_config: am/alertmanager.yml\n  receivers:\n"
                                          "    - {name: legacy-email, alertmanager: {url: 'http://am:9093'}}\n")
    assert cmd_check(type("A", (), {"config": "tocsin.yaml"})) == 1
    assert "bearer_token_file: cannot read" in capsys.readouterr().err


def test_inline_secrets_are_refused_in_tocsin_yaml(tmp_path, capsys):
    (tmp_path / "tocsin.yaml").write_text(
        "notify:\n  receivers:\n    - name: s\n      slack: {webhook_url: 'https://hooks.slack.com/services/x'}\n")
    assert cmd_check(type("A", (), {"config": str(tmp_path / "tocsin.yaml")})) == 1
    err = capsys.readouterr().err
    assert "notify.receivers[0].slack.webhook_url: secrets are never written in tocsin.yaml: use webhook_url_env" \
        in err and "webhook_url_file: PATH" in err


def test_route_keys_not_in_both_places(tmp_path):
    with pytest.raises(ValueError, match="given both here and by alertmanager_config"):
        NotifyConfig.model_validate({"alertmanager_config": str(DATA / "alertmanager.yml"),
                                     "route": {"receiver": "x"}})


# -- time intervals ---------------------------------------------------------------------------

def _ts(s: str, tz: str = "UTC") -> float:
    return dt.datetime.fromisoformat(s).replace(tzinfo=ZoneInfo(tz)).timestamp()


def test_time_interval_semantics():
    cfg = load_file(DATA / "alertmanager.yml", {"legacy-email"}).translated
    iv = IntervalSet(cfg.time_intervals)
    # business hours are Berlin time: 08:30 UTC in winter is 09:30 in Berlin
    assert iv.active("business-hours", _ts("2026-01-14T08:30:00"))            # a Wednesday
    assert not iv.active("business-hours", _ts("2026-01-14T16:30:00"))        # 17:30 Berlin
    assert not iv.active("business-hours", _ts("2026-01-17T10:00:00", "Europe/Berlin"))   # Saturday
    assert iv.active("nights-and-weekends", _ts("2026-01-14T23:59:00"))       # 24:00 is the end
    assert iv.active("nights-and-weekends", _ts("2026-01-14T06:59:00"))
    assert not iv.active("nights-and-weekends", _ts("2026-01-14T07:00:00"))   # end_time is exclusive
    assert iv.active("nights-and-weekends", _ts("2026-01-18T12:00:00"))       # Sunday
    assert iv.active("holidays", _ts("2026-12-25T12:00:00")) and iv.active("holidays", _ts("2026-12-31T12:00:00"))
    assert iv.active("holidays", _ts("2027-01-01T00:00:00")) and not iv.active("holidays", _ts("2026-12-30T12:00:00"))
    assert iv.may_send(("holidays",), (), _ts("2026-12-30T12:00:00"))
    assert not iv.may_send((), ("business-hours",), _ts("2026-01-18T12:00:00"))
    leap = NamedTimeInterval.model_validate({"name": "last", "time_intervals": [{"days_of_month": ["-1"]}]})
    assert leap.contains(_ts("2028-02-29T12:00:00")) and not leap.contains(_ts("2028-02-28T12:00:00"))
    for bad, msg in (({"weekdays": ["friday:monday"]}, "starts after it ends"), ({"months": ["smarch"]}, "unknown"),
                     ({"times": [{"start_time": "17:00", "end_time": "09:00"}]}, "over midnight"),
                     ({"location": "Mars/Olympus"}, "unknown time zone"), ({"days_of_month": ["-3:5"]}, "negative")):
        with pytest.raises(ValueError, match=msg):
            NamedTimeInterval.model_validate({"name": "x", "time_intervals": [bad]})


def test_native_time_intervals_mute_and_activate_routes(store, metrics, clock):
    """The native notify: form: a muted route sends nothing while muted, then
    what is current; an active-only route waits for its interval."""
    hook = FakeHTTP(lambda req: (200, {}, "ok"))
    try:
        cfg = NotifyConfig.model_validate({
            "receivers": [{"name": "hook", "webhook": {"url": hook.url + "/muted"}},
                          {"name": "day", "webhook": {"url": hook.url + "/day"}}],
            "time_intervals": [{"name": "night", "time_intervals": [{"times": [
                {"start_time": "00:00", "end_time": "06:00"}]}]},
                {"name": "daytime", "time_intervals": [{"times": [{"start_time": "08:00", "end_time": "20:00"}]}]}],
            "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1m", "routes": [
                {"receiver": "hook", "matchers": ['team="a"'], "mute_time_intervals": ["night"]},
                {"receiver": "day", "matchers": ['team="b"'], "active_time_intervals": ["daytime"]}]},
        })
        clock.t = _ts("2026-03-02T05:00:00")
        n = Notifier(cfg, store, metrics, clock=clock, stale_after=10 ** 9)
        n.submit([Alert(labels={"alertname": "A", "team": "a"}, starts_at=clock.t),
                  Alert(labels={"alertname": "B", "team": "b"}, starts_at=clock.t)])
        for _ in range(59):
            clock.advance(60)
            n.tick()
        assert [r.path for r in hook.requests] == []                # 05:00–05:59: muted, and outside daytime
        clock.t = _ts("2026-03-02T06:00:30")
        n.tick()
        assert [r.path for r in hook.requests] == ["/muted"]        # the mute ended: sent at the next flush
        clock.t = _ts("2026-03-02T08:00:30")
        n.tick()
        assert [r.path for r in hook.requests] == ["/muted", "/day"]
        with pytest.raises(ValueError, match="no time interval named 'weekend'"):
            NotifyConfig.model_validate({"receivers": [{"name": "h", "console": {}}], "route": {
                "receiver": "h", "routes": [{"receiver": "h", "mute_time_intervals": ["weekend"]}]}})
    finally:
        hook.close()


# -- templates ---------------------------------------------------------------------------------

def _notification() -> Notification:
    a = Alert(labels={"alertname": "DiskFull", "severity": "critical", "cluster": "eu1", "instance": "db-1"},
              annotations={"summary": "disk 97% full", "runbook_url": "https://runbooks/disk"}, starts_at=1.7e9)
    b = Alert(labels={"alertname": "DiskFull", "severity": "critical", "cluster": "eu1", "instance": "db-2"},
              annotations={"summary": "disk 95% full"}, starts_at=1.7e9)
    return Notification(id="1", receiver="default-slack", integration="slack", group_key="k",
                        group_labels={"alertname": "DiskFull"}, firing=(a, b), resolved=(), created_at=1.7e9)


def test_templates_of_the_fixture_render_like_alertmanager():
    ts, problems = TemplateSet.from_files([str(DATA / "templates" / "*.tmpl")])
    assert problems == []
    n = _notification()
    data = notification_data(n)
    assert ts.render('{{ template "slack.acme.title" . }}', data) == "[FIRING:2] DiskFull in eu1"
    assert ts.render('{{ template "slack.acme.text" . }}', data) == \
        "*CRITICAL* disk 97% full <https://runbooks/disk|runbook>\n*CRITICAL* disk 95% full\n"
    assert ts.render('{{ template "slack.default.title" . }}', data) == "[FIRING:2] DiskFull (eu1 critical)"
    assert ts.render('{{ range $i, $a := .Alerts }}{{ if $i }}, {{ end }}{{ $a.Labels.instance }}{{ end }}',
                     data) == "db-1, db-2"
    assert ts.render('{{ with .CommonAnnotations.summary }}{{ . }}{{ else }}various{{ end }}', data) == "various"
    assert ts.render('{{ .CommonLabels.SortedPairs.Names | join "," }}', data) == "alertname,cluster,severity"
    assert ts.render('{{ printf "%d/%d" (len .Alerts.Firing) (len .Alerts.Resolved) }}', data) == "2/0"
    assert ts.render('{{ reReplaceAll "db-(.*)" "node $1" (index .Alerts 0).Labels.instance }}', data) == "node 1"
    assert check_template("{{ .Alerts | toJson }}") == 'function "toJson" not defined'
    assert "without {{end}}" in check_template("{{ range .Alerts }}x")
    assert "not supported" in check_template("{{ range .Alerts }}{{ break }}{{ end }}")


def test_template_values_from_senders_are_escaped_in_slack_markup_but_the_template_s_own_links_stay():
    from alerting.notify.slack.templated import apply_templates

    evil = "<!channel> <https://evil.example|open the runbook>"
    a = Alert(labels={"alertname": "Slow", "http_route": evil},
              annotations={"summary": f"slow route {evil}", "runbook_url": "https://runbooks/slow"}, starts_at=1.7e9)
    n = Notification(id="1", receiver="r", integration="slack", group_key="k", group_labels={"alertname": "Slow"},
                     firing=(a,), resolved=(), created_at=1.7e9)
    head = [{"type": "header", "text": {"type": "plain_text", "text": "x"}}]
    text, blocks = apply_templates(
        n, "fallback", head + [{"type": "section"}], "{{ (index .Alerts 0).Labels.http_route }}",
        "{{ range .Alerts }}{{ .Annotations.summary }} <{{ .Annotations.runbook_url }}|runbook>{{ end }}",
        TemplateSet())
    body = blocks[1]["text"]["text"]
    assert body == ("slow route &lt;!channel&gt; &lt;https://evil.example|open the runbook&gt; "
                    "<https://runbooks/slow|runbook>")
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert blocks[0]["text"]["text"] == evil   # the header is plain text: Slack shows it as written


# -- end to end ----------------------------------------------------------------------------------

@pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (apt-get install prometheus-alertmanager)")
@pytest.mark.timeout(120)
def test_server_with_alertmanager_yml_routes_templates_and_inhibits(server_factory, tmp_path):
    """The fixture served by the real server (its secrets pointing at local
    servers that answer like Slack, PagerDuty and an Alertmanager); alerts
    added with `amtool alert add`."""
    from notify_fakes import FakeSlack

    slack = FakeSlack()
    pd = FakeHTTP(lambda req: (202, {}, {"status": "success", "dedup_key": req.json().get("dedup_key")}))
    am = FakeHTTP(lambda req: (200, {}, ""))
    try:
        shutil.copytree(DATA, tmp_path / "am")
        yml = tmp_path / "am" / "alertmanager.yml"
        text = yml.read_text().replace("https://events.pagerduty.com", pd.url)
        text = text.replace("group_wait: 30s", "group_wait: 1s").replace("group_wait: 1m", "group_wait: 1s")
        yml.write_text(text)
        (tmp_path / "am" / "secrets" / "slack-webhook-url").write_text(f"{slack.url}/services/T000/B000/XXXX\n")
        srv = server_factory({"rules": {"files": []}, "notify": {
            "alertmanager_config": "am/alertmanager.yml",
            "receivers": [{"name": "legacy-email", "alertmanager": {"url": am.url}}]}}, workdir=tmp_path)
        assert "a secret written in the file" in srv.output()   # the inline routing_key, logged as a warning
        assert "0123456789abcdef0123456789abcdef" not in srv.output()

        def add(*labels, summary=""):
            r = subprocess.run([AMTOOL, f"--alertmanager.url={srv.api_url}", "alert", "add", *labels,
                                f"--annotation=summary={summary}"], capture_output=True, text=True, timeout=30)
            assert r.returncode == 0, r.stderr

        add("alertname=DiskFull", "severity=critical", "cluster=eu1", "service=api", summary="disk 97% full")
        add("alertname=DiskFull", "severity=warning", "cluster=eu1", summary="disk 80% full")   # inhibited
        add("alertname=HighLatency", "cluster=eu1", "severity=info", summary="p95 900ms")
        add("alertname=Watchdog", summary="always firing")
        add("alertname=OldJob", "env=legacy", summary="cron failed")

        import time
        deadline = time.time() + 60
        while time.time() < deadline and not (slack.messages and pd.requests and am.requests):
            time.sleep(0.2)
        time.sleep(2)   # a little longer: nothing else may arrive
        assert [m["text"] for m in slack.messages] == ["[FIRING:1] HighLatency in eu1"], srv.output()[-3000:]
        blocks = slack.messages[0]["blocks"]
        assert blocks[0]["text"]["text"] == "[FIRING:1] HighLatency in eu1"
        assert blocks[1]["text"]["text"] == "*INFO* p95 900ms"
        (event,) = [r.json() for r in pd.requests]
        assert event["routing_key"] == "fedcba9876543210fedcba9876543210"      # from routing_key_file
        assert event["payload"]["summary"] == "DiskFull: disk 97% full"          # the description template
        assert event["payload"]["severity"] == "critical"
        (fwd,) = [r.json() for r in am.requests]
        assert fwd[0]["labels"]["alertname"] == "OldJob"                        # the native receiver replaced email

        # Reload reads the file again: all or nothing
        with srv.client() as c:
            yml.write_text(yml.read_text().replace("  - name: blackhole\n", "  - name: blackhole\n  - name: extra\n"))
            assert c.post("/-/reload").status_code == 200
            assert {"name": "extra"} in c.get("/api/v2/receivers").json()
            yml.write_text(yml.read_text().replace("receiver: blackhole", "receiver: nowhere"))
            r = c.post("/-/reload")
            assert r.status_code != 200 and "no receiver named 'nowhere'" in r.text and "alertmanager.yml:" in r.text
            assert {"name": "extra"} in c.get("/api/v2/receivers").json()      # the previous config still runs
    finally:
        slack.close()
        pd.close()
        am.close()
