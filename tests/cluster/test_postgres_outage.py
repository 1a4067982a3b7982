"""PostgreSQL is not a single point of failure for what was acknowledged
(docs/cluster.md, "PostgreSQL down"): stopped for 20 s under load, the replicas
keep acknowledging into their write-ahead logs (HAProxy sends to live replicas
when none is ready), refuse with 503 + Retry-After once a log is at its bound,
rules pause — no page on missing data —, and when PostgreSQL is back a leader
is elected again, the backlog is written, nothing is counted twice."""
import time

import httpx
import pytest

from harness import scenario_config, wait_for
from load import start_load, stop_load
from test_replica_durability import _all_flushed_since

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


def test_postgresql_stopped_for_20s_under_load(cluster_factory, receivers, tmp_path, own_pg):
    cfg = scenario_config(tmp_path, receivers, storage={"wal_max_size": "256KiB"}, limits={"retry_after": "2s"})
    c = cluster_factory(3, cfg, env=receivers.env)
    _, epoch = c.leader()
    senders = start_load(c.haproxy, "checkout", lambda: 0.05)     # healthy traffic: nothing may page
    try:
        wait_for(lambda: c.stored_spans("checkout") > 0, 30, "the first flush")
        acked = lambda: sum(s.acked for s in senders)  # noqa: E731
        own_pg.stop()
        stopped = time.monotonic()
        before = acked()
        wait_for(lambda: acked() > before + 200, 20, "acknowledgements while PostgreSQL is down")
        for r in c.replicas:
            ready = wait_for(lambda r=r: (x := r.get("/-/ready")).status_code == 503 and x, 30, "not ready")
            assert "the store has not accepted writes" in ready.text
        wait_for(lambda: all(r.metric("tocsin_cluster_leader") == 0 for r in c.replicas), 20, "no leader")
        # a log at its bound refuses with a retryable answer
        wait_for(lambda: any((r.metric('tocsin_receiver_refused_requests_total{reason="wal_full",signal="traces"}')
                              or 0) > 0 for r in c.replicas), 30, "a write-ahead log at its bound")
        direct = httpx.post(f"http://127.0.0.1:{c.replicas[0].ports['http']}/v1/traces", content=b"",
                            headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert direct.status_code in (200, 503)
        if direct.status_code == 503:
            assert direct.headers["retry-after"] == "2"
        time.sleep(max(0.0, 20.0 - (time.monotonic() - stopped)))
        down_for = time.monotonic() - stopped
        own_pg.start()
        back = time.time()
        _, new_epoch = c.leader(timeout=60, newer_than=epoch)
        resumed = acked()
        wait_for(lambda: acked() > resumed + 200, 60, "acknowledgements after the return")
        # rules evaluate again, once every replica has written its backlog
        wait_for(lambda: any((r.metric("tocsin_rule_group_last_evaluation_timestamp_seconds") or 0) > back
                             for r in c.replicas), 60, "rule evaluations after the return")
    finally:
        totals = stop_load(senders)
    stopped_load = time.time()
    wait_for(lambda: _all_flushed_since(c, stopped_load + 0.5), 60, "every replica flushed")
    acked_total, unsure, in_flight = totals
    stored = c.stored_spans("checkout")
    print(f"PostgreSQL down {down_for:.1f} s; epoch {epoch} -> {new_epoch}; acknowledged {acked_total}, "
          f"unsure {unsure}, stored {stored}")
    assert down_for >= 20.0
    assert acked_total <= stored <= acked_total + unsure + in_flight, (acked_total, unsure, in_flight, stored)
    assert receivers.pd.requests == [] and receivers.slack.messages == []    # never paged on missing data
    assert "Traceback" not in c.outputs()
