"""PostgreSQL is not the new single point of failure (docs/cluster.md): the
replicas use a multi-host DSN (``host=a,b ... target_session_attrs=read-write``);
a streaming standby, made by the test with ``pg_basebackup``, is promoted after
the primary is stopped, under load and during an alert. The replicas reconnect to
it, a leader is elected there (the epoch goes on from the replicated row),
nothing acknowledged is lost, no page is lost or sent twice."""
import time

import pytest

from harness import scenario_config, wait_for
from load import start_load, stop_load
from test_replica_durability import _all_flushed_since

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]


def test_standby_promoted_after_the_primary_stops_under_load(cluster_factory, receivers, tmp_path, own_pg):
    own_pg.allow_replication()
    standby = own_pg.standby()
    try:
        dsn = (f"host=127.0.0.1,127.0.0.1 port={own_pg.port},{standby.port} dbname=tocsin user=postgres "
               "target_session_attrs=read-write")
        cfg = scenario_config(tmp_path, receivers)
        c = cluster_factory(3, cfg, env=receivers.env, dsn=dsn)
        leader, epoch = c.leader()
        state = {"latency": 0.9}
        senders = start_load(c.haproxy, "checkout", lambda: state["latency"])
        try:
            wait_for(lambda: receivers.pd_events("trigger") and receivers.slack_texts(), 90, "the page")
            wait_for(lambda: leader.metric("tocsin_notification_queue_length") == 0, 30, "the send recorded")
            own_pg.stop()                 # a clean stop: the standby has received every commit
            stopped = time.monotonic()
            time.sleep(2.0)
            standby.promote()
            new_leader, new_epoch = c.leader(timeout=90, newer_than=epoch)
            print(f"leader again {time.monotonic() - stopped:.1f} s after the primary stopped "
                  f"(epoch {epoch} -> {new_epoch} on the promoted standby)")
            time.sleep(3.0)
            assert len(receivers.pd_events("trigger")) == 1 and len(receivers.slack_texts()) == 1
            state["latency"] = 0.05
            wait_for(lambda: receivers.pd_events("resolve") and len(receivers.slack_texts()) >= 2, 120,
                     "the resolve")
            time.sleep(4.0)
        finally:
            acked, unsure, in_flight = stop_load(senders)
        done = time.time()
        wait_for(lambda: _all_flushed_since(c, done + 0.5), 60, "every replica flushed")
        stored = c.stored_spans("checkout")          # read from the promoted standby (read-write)
        print(f"acknowledged {acked}, stored {stored}")
        assert acked <= stored <= acked + unsure + in_flight, (acked, unsure, in_flight, stored)
        assert len(receivers.pd_events("trigger")) == 1 and len(receivers.pd_events("resolve")) == 1
        assert len(receivers.slack_texts()) == 2
        assert all(f"127.0.0.1:{standby.port}" not in r.get("/-/ready").text for r in c.replicas)
    finally:
        standby.destroy()
