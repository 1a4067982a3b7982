"""Alertmanager's API v2 on Tocsin's API port, driven by the real clients:
Debian's ``amtool`` 0.25 (unchanged, only --alertmanager.url), and the exact
requests Grafana's Alertmanager data source (implementation "Prometheus")
makes, sent with httpx."""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from ruamel.yaml import YAML

AMTOOL = shutil.which("amtool")
needs_amtool = pytest.mark.skipif(AMTOOL is None, reason="amtool not installed (apt-get install prometheus-alertmanager)")

CONFIG = {
    "rules": {"files": []},
    "notify": {
        "receivers": [{"name": "log", "console": {}}, {"name": "team-db", "console": {}}],
        "route": {"receiver": "log", "group_by": ["alertname"], "group_wait": "1h",
                  "routes": [{"receiver": "team-db", "matchers": ['team="db"']}]},
        "inhibit_rules": [{"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                           "equal": ["alertname"]}],
    },
}


def amtool(url: str, *args: str, http_config: str | None = None) -> subprocess.CompletedProcess:
    cmd = [AMTOOL, f"--alertmanager.url={url}", *args]
    if http_config:
        cmd.insert(1, f"--http.config.file={http_config}")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def post_alerts(c, alerts, **kw):
    r = c.post("/api/v2/alerts", json=alerts, **kw)
    assert r.status_code == 200, r.text
    return r


@needs_amtool
def test_amtool_silence_add_query_expire_and_alert_query(server_factory):
    srv = server_factory(CONFIG)
    url = srv.api_url
    with srv.client() as c:
        post_alerts(c, [{"labels": {"alertname": "DiskFull", "team": "db", "severity": "warning"},
                         "annotations": {"summary": "disk 95% full"}},
                        {"labels": {"alertname": "HighLatency", "service": "checkout"},
                         "annotations": {"summary": "p95 900ms"}}])

    add = amtool(url, "silence", "add", "alertname=DiskFull", "--comment=maintenance", "--duration=2h",
                 "--author=ops")
    assert add.returncode == 0, add.stderr
    sid = add.stdout.strip()
    assert len(sid) == 36

    q = amtool(url, "silence", "query")
    assert q.returncode == 0, q.stderr
    assert sid in q.stdout and 'alertname="DiskFull"' in q.stdout and "maintenance" in q.stdout
    q = amtool(url, "silence", "query", "alertname=HighLatency")   # filter: no silence has that matcher
    assert sid not in q.stdout

    alerts = amtool(url, "alert", "query")        # amtool hides silenced alerts by default
    assert alerts.returncode == 0, alerts.stderr
    assert "HighLatency" in alerts.stdout and "DiskFull" not in alerts.stdout
    alerts = amtool(url, "alert", "query", "--silenced")
    assert "DiskFull" in alerts.stdout and "suppressed" in alerts.stdout
    alerts = amtool(url, "-o", "json", "alert", "query", "alertname=HighLatency")
    got = json.loads(alerts.stdout)
    assert [a["labels"]["alertname"] for a in got] == ["HighLatency"]
    assert got[0]["receivers"] == [{"name": "log"}] and got[0]["status"]["state"] == "active"
    routed = amtool(url, "-o", "json", "alert", "query", "--silenced", "--receiver=team-db")
    assert [a["labels"]["alertname"] for a in json.loads(routed.stdout)] == ["DiskFull"]

    exp = amtool(url, "silence", "expire", sid)
    assert exp.returncode == 0, exp.stderr
    assert sid not in amtool(url, "silence", "query").stdout
    assert sid in amtool(url, "silence", "query", "--expired").stdout
    assert "DiskFull" in amtool(url, "alert", "query").stdout   # no longer silenced

    bad = amtool(url, "silence", "expire", "00000000-0000-0000-0000-000000000000")
    assert bad.returncode != 0

    # The same silences through Tocsin's own v1 API and CLI: one store.
    with srv.client() as c:
        v1 = c.get("/api/v1/silences").json()
    assert [s["id"] for s in v1] == [sid] and v1[0]["status"]["state"] == "expired"

    routes = amtool(url, "config", "routes")
    assert routes.returncode == 0, routes.stderr
    assert "team-db" in routes.stdout and 'team="db"' in routes.stdout


@needs_amtool
def test_amtool_needs_the_admin_token_to_silence(server_factory, tmp_path):
    cfg = {**CONFIG, "auth": {"read_tokens": [{"token_env": "R_TOKEN"}], "admin_tokens": [{"token_env": "A_TOKEN"}]}}
    srv = server_factory(cfg, env={"R_TOKEN": "read-secret-1", "A_TOKEN": "admin-secret-1"})
    read_cfg, admin_cfg = tmp_path / "read.yml", tmp_path / "admin.yml"
    read_cfg.write_text("authorization:\n  credentials: read-secret-1\n")
    admin_cfg.write_text("authorization:\n  credentials: admin-secret-1\n")

    anon = amtool(srv.api_url, "silence", "query")
    assert anon.returncode != 0
    assert amtool(srv.api_url, "silence", "query", http_config=str(read_cfg)).returncode == 0
    denied = amtool(srv.api_url, "silence", "add", "alertname=X", "-c", "x", http_config=str(read_cfg))
    assert denied.returncode != 0
    ok = amtool(srv.api_url, "silence", "add", "alertname=X", "-c", "x", http_config=str(admin_cfg))
    assert ok.returncode == 0, ok.stderr
    with srv.client() as c:
        assert c.post("/api/v2/alerts", json=[{"labels": {"alertname": "A"}}],
                      headers={"Authorization": "Bearer read-secret-1"}).status_code == 401
        assert c.post("/api/v2/alerts", json=[{"labels": {"alertname": "A"}}],
                      headers={"Authorization": "Bearer admin-secret-1"}).status_code == 200


def test_grafana_alertmanager_datasource_requests(server_factory):
    """What Grafana's Alertmanager data source (implementation Prometheus) sends
    through its proxy: the health check, the alert list and groups of the
    alerting UI, and creating, editing and expiring a silence."""
    srv = server_factory(CONFIG)
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/plain, */*"}
    with srv.client() as c:
        # "Save & test"
        st = c.get("/api/v2/status", headers=headers)
        assert st.status_code == 200
        body = st.json()
        assert body["cluster"]["status"] in ("ready", "settling", "disabled")
        assert set(body["versionInfo"]) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
        original = YAML(typ="safe").load(body["config"]["original"])   # Grafana parses it as alertmanager.yml
        assert original["route"]["receiver"] == "log"
        assert [r["name"] for r in original["receivers"]] == ["log", "team-db"]
        assert original["inhibit_rules"][0]["equal"] == ["alertname"]
        datetime.fromisoformat(body["uptime"].replace("Z", "+00:00"))

        post_alerts(c, [{"labels": {"alertname": "DiskFull", "team": "db", "severity": "critical"}},
                        {"labels": {"alertname": "DiskFull", "team": "db", "severity": "warning"}},
                        {"labels": {"alertname": "HighLatency"}, "generatorURL": "http://prom/graph?g0.expr=x"}])

        # Alert list of the alerting UI, and the inhibited warning
        r = c.get("/api/v2/alerts", params={"silenced": "false", "inhibited": "false", "active": "true"},
                  headers=headers)
        assert r.status_code == 200
        names = sorted((a["labels"]["alertname"], a["labels"].get("severity", "")) for a in r.json())
        assert names == [("DiskFull", "critical"), ("HighLatency", "")]
        r = c.get("/api/v2/alerts", params=[("filter", 'severity="warning"')], headers=headers)
        (warning,) = r.json()
        crit_fp = [a for a in c.get("/api/v2/alerts").json() if a["labels"].get("severity") == "critical"][0][
            "fingerprint"]
        assert warning["status"] == {"state": "suppressed", "silencedBy": [], "inhibitedBy": [crit_fp]}
        for a in c.get("/api/v2/alerts").json():
            assert {"labels", "annotations", "fingerprint", "startsAt", "endsAt", "updatedAt", "receivers",
                    "status"} <= set(a)

        groups = c.get("/api/v2/alerts/groups", params={"silenced": "false", "inhibited": "false"},
                       headers=headers).json()
        by = {(g["receiver"]["name"], g["labels"].get("alertname")): g for g in groups}
        assert set(by) == {("team-db", "DiskFull"), ("log", "HighLatency")}
        assert len(by[("team-db", "DiskFull")]["alerts"]) == 1   # the warning is inhibited
        assert c.get("/api/v2/alerts/groups", params={"receiver": "team-.*"}).json()[0]["receiver"]["name"] == \
            "team-db"

        # New silence, as Grafana's silence editor posts it
        now = datetime.now(timezone.utc)
        sil = {"matchers": [{"name": "alertname", "value": "HighLatency", "isEqual": True, "isRegex": False}],
               "startsAt": iso(now), "endsAt": iso(now + timedelta(hours=2)), "createdBy": "grafana-user",
               "comment": "deploy"}
        r = c.post("/api/v2/silences", json=sil, headers=headers)
        assert r.status_code == 200, r.text
        sid = r.json()["silenceID"]
        got = c.get(f"/api/v2/silence/{sid}", headers=headers).json()
        assert got["status"]["state"] == "active" and got["createdBy"] == "grafana-user"
        r = c.get("/api/v2/alerts", params={"silenced": "true"}).json()
        assert [a["status"]["silencedBy"] for a in r if a["labels"]["alertname"] == "HighLatency"] == [[sid]]

        # Edit: Grafana posts the silence again with its id
        r = c.post("/api/v2/silences", json={**sil, "id": sid, "comment": "deploy, longer",
                                              "endsAt": iso(now + timedelta(hours=4))}, headers=headers)
        assert r.status_code == 200 and r.json()["silenceID"] == sid
        assert c.get(f"/api/v2/silence/{sid}").json()["comment"] == "deploy, longer"
        listed = c.get("/api/v2/silences", headers=headers).json()
        assert [s["id"] for s in listed] == [sid]
        assert c.get("/api/v2/silences", params=[("filter", 'alertname="Other"')]).json() == []
        assert [s["id"] for s in c.get("/api/v2/silences", params=[("filter", 'alertname=~"High.*"')]).json()] == [sid]

        # Expire
        assert c.delete(f"/api/v2/silence/{sid}", headers=headers).status_code == 200
        assert c.get(f"/api/v2/silence/{sid}").json()["status"]["state"] == "expired"
        assert c.get("/api/v2/silence/7b1c2b7e-0000-4000-8000-000000000000").status_code == 404

        assert c.get("/api/v2/receivers").json() == [{"name": "log"}, {"name": "team-db"}]

        # Bad input: Alertmanager's answers
        r = c.post("/api/v2/silences", json={**sil, "matchers": [{"name": "a", "value": ".*", "isRegex": True}]})
        assert r.status_code == 400 and "empty" in r.json()
        r = c.post("/api/v2/silences", json={**sil, "endsAt": iso(now - timedelta(hours=1)),
                                              "startsAt": iso(now - timedelta(hours=2))})
        assert r.status_code == 400 and "past" in r.json()
        r = c.get("/api/v2/alerts", params={"filter": "not a matcher"})
        assert r.status_code == 400
        r = c.post("/api/v2/alerts", json=[{"labels": {}}, {"labels": {"alertname": "Kept"}}])
        assert r.status_code == 400 and "alert 0" in r.json()
        assert any(a["labels"]["alertname"] == "Kept" for a in c.get("/api/v2/alerts").json())


def test_posted_alert_resolves_at_its_ends_at(server_factory):
    srv = server_factory(CONFIG)
    with srv.client() as c:
        soon = datetime.now(timezone.utc) + timedelta(seconds=2)
        post_alerts(c, [{"labels": {"alertname": "Blip"}, "endsAt": iso(soon)}])
        assert [a["labels"]["alertname"] for a in c.get("/api/v2/alerts").json()] == ["Blip"]
        deadline = time.time() + 30
        while time.time() < deadline and c.get("/api/v2/alerts").json():
            time.sleep(0.2)
        assert c.get("/api/v2/alerts").json() == []
