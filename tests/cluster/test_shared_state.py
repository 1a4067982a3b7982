"""Every replica answers for the cluster (docs/cluster.md, "What every replica
answers"): a silence created on one replica is effective on all at once
(LISTEN/NOTIFY; the poll fallback is set slower here, so only the notification
can be that fast); alerts posted to a follower's Alertmanager API reach the
leader's pipeline through the store; /api/v1/alerts, /api/v1/rules and
/api/v2/alerts on a follower show the leader's state."""
import time

import httpx
import pytest

from harness import scenario_config, wait_for
from load import start_load, stop_load

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


def _silence(replica, alertname: str) -> str:
    now = time.time()
    body = {"matchers": [{"name": "alertname", "value": alertname, "isRegex": False, "isEqual": True}],
            "startsAt": _rfc(now), "endsAt": _rfc(now + 3600), "createdBy": "test", "comment": "maintenance"}
    r = httpx.post(replica.api_url + "/api/v2/silences", json=body, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["silenceID"]


def _rfc(t: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _post(replica, alertname: str) -> None:
    now = time.time()
    alert = {"labels": {"alertname": alertname, "service_name": "payments", "severity": "critical"},
             "annotations": {"summary": f"{alertname} from a Prometheus"},
             "startsAt": _rfc(now), "endsAt": _rfc(now + 600)}
    r = httpx.post(replica.api_url + "/api/v2/alerts", json=[alert], timeout=10)
    assert r.status_code == 200, r.text


def test_silences_posted_alerts_and_alert_state_are_shared(cluster_factory, receivers, tmp_path):
    # heartbeat 2 s: the fallback poll runs every 4 s, so a silence seen within 0.5 s came by NOTIFY
    cfg = scenario_config(tmp_path, receivers, cluster={"heartbeat_interval": "2s", "failover_timeout": "8s"})
    c = cluster_factory(3, cfg, env=receivers.env, haproxy=False)
    leader, epoch = c.leader()
    a, b = [r for r in c.replicas if r is not leader]

    sid = _silence(a, "PostedSilenced")
    created = time.monotonic()
    seen = {}
    while len(seen) < 3 and time.monotonic() - created < 10:
        for r in c.replicas:
            if r.name not in seen and any(s["id"] == sid and s["status"]["state"] == "active"
                                          for s in r.get("/api/v2/silences").json()):
                seen[r.name] = time.monotonic() - created
        time.sleep(0.02)
    print("silence visible after", {k: round(v, 3) for k, v in seen.items()})
    assert len(seen) == 3 and max(seen.values()) <= 0.5, seen

    _post(b, "PostedSilenced")      # to a follower: silenced, never sent
    _post(a, "PostedLoud")          # to the other follower: the leader pages it
    wait_for(lambda: receivers.pd_events("trigger"), 60, "the posted alert paged")
    wait_for(lambda: all({"PostedSilenced", "PostedLoud"} <= {x["labels"]["alertname"]
                                                              for x in r.get("/api/v2/alerts").json()}
                         for r in c.replicas), 30, "posted alerts listed by every replica")
    status = b.get("/api/v2/status").json()["cluster"]     # amtool cluster show / Grafana's AM data source
    assert status["name"] == b.name and status["status"] == "ready"
    assert sorted(p["name"] for p in status["peers"]) == sorted(r.name for r in c.replicas)
    muted = [x for x in b.get("/api/v2/alerts").json() if x["labels"]["alertname"] == "PostedSilenced"]
    assert muted[0]["status"]["state"] == "suppressed" and muted[0]["status"]["silencedBy"] == [sid]

    # the latency rule fires; every replica's /api/v1/alerts and /api/v1/rules show it
    senders = start_load(_Direct(leader), "checkout", lambda: 0.9)
    try:
        def everyone_sees_it():
            for r in c.replicas:
                alerts = r.get("/api/v1/alerts").json()["data"]["alerts"]
                if not any(x["labels"]["alertname"] == "CheckoutSlow" and x["state"] == "firing" for x in alerts):
                    return False
                rule = r.get("/api/v1/rules").json()["data"]["groups"][0]["rules"][0]
                if rule["state"] != "firing" or rule["health"] != "ok" or rule["lastEvaluation"].startswith("0001"):
                    return False
            return True
        wait_for(everyone_sees_it, 90, "CheckoutSlow firing on every replica's API")
    finally:
        stop_load(senders)

    # expiring the silence on the other follower: the leader sends what it muted
    assert httpx.delete(f"{b.api_url}/api/v2/silence/{sid}", timeout=10).status_code == 200
    wait_for(lambda: any("PostedSilenced" in e["payload"]["summary"] for e in receivers.pd_events("trigger")),
             30, "the alert that was silenced")
    time.sleep(3.0)
    summaries = sorted(e["payload"]["summary"] for e in receivers.pd_events("trigger"))
    assert sum("PostedLoud" in s for s in summaries) == 1 and sum("PostedSilenced" in s for s in summaries) == 1
    assert sum("CheckoutSlow" in s for s in summaries) == 1, summaries
    # with a lease of one heartbeat (failover_timeout = 4 heartbeats, its minimum) the leader
    # confirms twice per lease: it stayed leader the whole test, no takeover in between
    now_leader, now_epoch = c.leader()
    assert (now_leader.name, now_epoch) == (leader.name, epoch), "leadership changed hands in a healthy cluster"


class _Direct:
    """Load straight to one replica (no HAProxy in this test)."""

    def __init__(self, replica):
        self.http_url = f"http://127.0.0.1:{replica.ports['http']}"
        self.grpc_target = f"127.0.0.1:{replica.ports['grpc']}"
