"""Rules never judge partial data (docs/cluster.md): a replica that flushes
slowly cannot make an alert resolve falsely.

Two replicas; tocsin-2 flushes only every 10 s (its cluster.visibility is 20 s).
Both receive slow checkout spans: CheckoutSlow fires. Then tocsin-1's share turns
fast while tocsin-2's stays slow — the true p95 is still far above 500 ms. Had
the leader judged what is in the store, it would have seen mostly fast spans for
the last seconds and resolved; it waits for tocsin-2's flush instead (measured),
so nothing resolves until tocsin-2's traffic is fast too."""
import time

import pytest

from harness import metric_value, scenario_config, wait_for
from load import Sender

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


class _Direct:
    def __init__(self, replica):
        self.http_url = f"http://127.0.0.1:{replica.ports['http']}"
        self.grpc_target = f"127.0.0.1:{replica.ports['grpc']}"


def test_a_slow_flushing_replica_cannot_make_an_alert_resolve_falsely(cluster_factory, receivers, tmp_path):
    cfg = scenario_config(tmp_path, receivers, cluster={"evaluation_wait": "15s"})
    c = cluster_factory(2, cfg, env=receivers.env, haproxy=False,
                        replica_env={2: {"TOCSIN_CLUSTER__VISIBILITY": "20s"}})
    leader, _ = c.leader()
    assert leader.name == "tocsin-1"
    slow = c.replicas[1]
    latency = {"tocsin-1": 0.9, "tocsin-2": 0.9}
    senders = [Sender("http", _Direct(r), "checkout", batch=20, every=0.1, latency=lambda n=r.name: latency[n],
                      seed=i).start() for i, r in enumerate(c.replicas)]
    try:
        wait_for(lambda: receivers.pd_events("trigger"), 90, "the page")
        latency["tocsin-1"] = 0.05          # half the traffic recovers; p95 of all is still ~0.9 s
        held_from = time.monotonic()
        time.sleep(25.0)                     # two and a half of tocsin-2's flush periods
        assert receivers.pd_events("resolve") == [], "resolved on partial data"
        assert len(receivers.slack_texts()) == 1
        waited = leader.get("/metrics").text
        total = metric_value(waited, 'tocsin_rule_group_data_wait_seconds_sum{group="cluster"}')
        count = metric_value(waited, 'tocsin_rule_group_data_wait_seconds_count{group="cluster"}')
        print(f"evaluations waited {total:.1f} s in {count:.0f} evaluations for tocsin-2's flushes")
        assert total > 5.0
        latency["tocsin-2"] = 0.05           # now all of checkout recovers
        wait_for(lambda: receivers.pd_events("resolve"), 90, "the true resolve")
        print(f"resolved {time.monotonic() - held_from:.1f} s after half the traffic recovered")
    finally:
        for s in senders:
            s.stop()
    assert len(receivers.pd_events("trigger")) == 1 and len(receivers.pd_events("resolve")) == 1
    assert slow.running
