"""A pager must say when it cannot page (docs/cluster.md, "Self-alerts"): the
Watchdog reaches a dead man's switch while the cluster can page and stops when
it cannot; the leader reports a replica that stopped and a receiver that keeps
failing; when PostgreSQL is unreachable — the pipeline itself is down — each
replica says so straight to the receiver, and resolves it when it is back."""
import time

import pytest

from harness import rules_file, wait_for
from notify_fakes import FakeHTTP

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


def _alerts(fake: FakeHTTP, name: str, status: str | None = None) -> list[dict]:
    out = []
    for req in list(fake.requests):
        body = req.json()
        for a in body.get("alerts", []):
            if a["labels"].get("alertname") == name and (status is None or a["status"] == status):
                out.append({**a, "_at": body})
    return out


def test_watchdog_replica_down_failing_receiver_and_unreachable_postgresql(cluster_factory, tmp_path, own_pg):
    dms = FakeHTTP(lambda req: (200, {}, "ok"))            # a dead man's switch outside Tocsin
    ops = FakeHTTP(lambda req: (200, {}, "ok"))
    broken = FakeHTTP(lambda req: (500, {}, "down"))
    try:
        cfg = {"rules": {"files": [rules_file(tmp_path, {"groups": []})]},
               "cluster": {"enabled": True, "heartbeat_interval": "500ms", "failover_timeout": "4s"},
               "self_alerts": {"enabled": True, "hold_for": "1s"},
               "notify": {"receivers": [{"name": "dms", "webhook": {"url": dms.url + "/ping"}},
                                        {"name": "ops", "webhook": {"url": ops.url + "/alerts"}},
                                        {"name": "broken", "webhook": {"url": broken.url + "/x"}}],
                          "route": {"receiver": "ops", "group_by": ["alertname", "replica", "receiver"],
                                    "group_wait": "500ms", "group_interval": "1s", "repeat_interval": "1h",
                                    "routes": [{"receiver": "dms", "matchers": ['alertname="Watchdog"'],
                                                "repeat_interval": "2s"},
                                               {"receiver": "broken", "matchers": ['alertname="BrokenRoute"']}]}}}
        c = cluster_factory(3, cfg, haproxy=False)
        leader, _ = c.leader()
        wait_for(lambda: len(_alerts(dms, "Watchdog")) >= 2, 30, "the Watchdog, repeatedly")

        # a receiver that keeps failing
        import httpx
        now = time.time()
        httpx.post(leader.api_url + "/api/v2/alerts", timeout=10, json=[{
            "labels": {"alertname": "BrokenRoute", "severity": "critical"},
            "startsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
            "endsAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600))}]).raise_for_status()
        failing = wait_for(lambda: _alerts(ops, "TocsinNotificationsFailing", "firing"), 60,
                           "TocsinNotificationsFailing")
        assert failing[0]["labels"]["receiver"] == "broken"

        # a replica killed: the leader reports it down; back: resolved
        victim = next(r for r in c.replicas if r is not leader)
        victim.kill()
        down = wait_for(lambda: _alerts(ops, "TocsinReplicaDown", "firing"), 60, "TocsinReplicaDown")
        assert down[0]["labels"]["replica"] == victim.name
        victim.start()
        wait_for(lambda: _alerts(ops, "TocsinReplicaDown", "resolved"), 60, "its resolve")

        # PostgreSQL unreachable for all: no leader can send; each replica says so itself
        own_pg.stop()
        direct = wait_for(lambda: len({a["labels"]["replica"] for a in
                                       _alerts(ops, "TocsinStoreUnavailable", "firing")}) == 3 and
                          _alerts(ops, "TocsinStoreUnavailable", "firing"), 60, "TocsinStoreUnavailable from each")
        assert {a["labels"]["replica"] for a in direct} == {r.name for r in c.replicas}
        time.sleep(2.0)
        pings = len(_alerts(dms, "Watchdog"))
        time.sleep(6.0)
        assert len(_alerts(dms, "Watchdog")) == pings, "the Watchdog went on while nothing could page"
        own_pg.start()
        wait_for(lambda: len(_alerts(ops, "TocsinStoreUnavailable", "resolved")) >= 3, 60, "the resolves")
        wait_for(lambda: len(_alerts(dms, "Watchdog")) > pings, 60, "the Watchdog again")
    finally:
        for f in (dms, ops, broken):
            f.close()


def test_no_leader_is_reported_once_by_a_follower_and_resolved(cluster_factory, tmp_path, own_pg):
    """Someone else holds the leader's lock — as a PgBouncer in transaction mode would leave it:
    no replica can lead. After the failover timeout one follower (a claim in the store) sends
    TocsinNoLeader itself; when the lock frees and a replica leads, it is resolved."""
    import psycopg

    from collector.store.postgres.cluster import LEADER_LOCK

    ops = FakeHTTP(lambda req: (200, {}, "ok"))
    holder = psycopg.connect(own_pg.dsn("tocsin"), autocommit=True)
    try:
        holder.execute("SELECT pg_advisory_lock(%s)", [LEADER_LOCK])
        cfg = {"rules": {"files": [rules_file(tmp_path, {"groups": []})]},
               "cluster": {"enabled": True, "heartbeat_interval": "500ms", "failover_timeout": "4s"},
               "self_alerts": {"enabled": True, "hold_for": "1s"},
               "notify": {"receivers": [{"name": "ops", "webhook": {"url": ops.url + "/alerts"}}],
                          "route": {"receiver": "ops", "group_by": ["alertname"], "group_wait": "500ms",
                                    "group_interval": "1s", "repeat_interval": "1h"}}}
        c = cluster_factory(3, cfg, haproxy=False, wait_leader=False)
        wait_for(lambda: _alerts(ops, "TocsinNoLeader", "firing"), 60, "TocsinNoLeader")
        time.sleep(3.0)
        assert len(_alerts(ops, "TocsinNoLeader", "firing")) == 1      # one follower for the episode
        holder.execute("SELECT pg_advisory_unlock(%s)", [LEADER_LOCK])
        c.leader()
        wait_for(lambda: _alerts(ops, "TocsinNoLeader", "resolved"), 60, "its resolve")
        time.sleep(2.0)
        assert len(_alerts(ops, "TocsinNoLeader", "resolved")) == 1
    finally:
        holder.close()
        ops.close()

