"""No acknowledged span is lost when a replica is killed and restarted
(docs/cluster.md, "Durability"), and every replica answers the same query the
same within cluster.visibility ("Visibility")."""
import time

import httpx
import pytest

from harness import wait_for
from load import http_exporter, start_load, stop_load

pytestmark = [pytest.mark.serial, pytest.mark.timeout(300)]

CLUSTER = {"enabled": True, "heartbeat_interval": "500ms", "failover_timeout": "4s", "visibility": "2s"}


def _all_flushed_since(c, t_wall: float) -> bool:
    """Every live replica's flush watermark is past ``t_wall`` (what they acknowledged before is stored)."""
    import datetime as dt

    for r in c.live():
        for row in r.status()["replicas"]:
            if row["replica"] == r.name:
                last = row["lastFlush"]
                if last is None or dt.datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp() < t_wall:
                    return False
    return True


def test_non_leader_sigkill_under_load_then_restart_counts_every_acknowledged_span_once(cluster_factory):
    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": "500ms"}, "cluster": CLUSTER}
    c = cluster_factory(3, cfg)
    leader, _ = c.leader()
    victim = next(r for r in c.replicas if r is not leader)
    senders = start_load(c.haproxy, "shop", lambda: 0.05, batch=25, every=0.02)
    try:
        wait_for(lambda: (victim.metric("tocsin_items_accepted_total") or 0) > 0, 30, "traffic on the victim")
        time.sleep(2.0)
        victim.kill()                                 # SIGKILL: its unflushed tail is only in its WAL
        acked_at_kill = sum(s.acked for s in senders)
        wait_for(lambda: sum(s.acked for s in senders) > acked_at_kill + 500, 60, "load going on without it")
        victim.start()                                # replays its write-ahead log into PostgreSQL
        c.haproxy.wait_up({victim.name})
        wait_for(lambda: (victim.metric("tocsin_items_accepted_total") or 0) > 0, 30, "traffic on it again")
        time.sleep(2.0)
    finally:
        acked, unsure, in_flight = stop_load(senders)
    stopped = time.time()
    wait_for(lambda: _all_flushed_since(c, stopped + 0.5), 30, "every replica flushed")
    stored = c.stored_spans("shop")
    print(f"acknowledged {acked}, unsure {unsure}, stored {stored}")
    assert acked > 3000
    # every acknowledged span exactly once; only a batch in flight at the kill (sent again by the
    # exporter after the replica had stored it) may be counted in addition, at most one per sender
    assert acked <= stored <= acked + unsure + in_flight, (acked, unsure, in_flight, stored)
    replayed = victim.metric("tocsin_wal_replayed_records_total")
    assert replayed is not None
    assert "Traceback" not in c.outputs()


def test_every_replica_answers_the_same_within_the_visibility_delay(cluster_factory):
    cfg = {"rules": {"files": []}, "cluster": CLUSTER}
    c = cluster_factory(3, cfg, haproxy=False)
    delays = []
    for i in range(6):
        sender = c.replicas[i % 3]                   # each round acknowledged by another replica
        service = f"visibility-{i}"
        exp = http_exporter(f"http://127.0.0.1:{sender.ports['http']}")
        spans = _spans(service, 40)
        assert exp.export(spans).name == "SUCCESS"
        acked = time.monotonic()
        exp.shutdown()
        query = f'sum(traces_span_metrics_calls_total{{service_name="{service}"}})'
        seen: dict[str, float] = {}
        while len(seen) < 3:
            for r in c.replicas:
                if r.name in seen:
                    continue
                res = httpx.get(r.api_url + "/api/v1/query", params={"query": query}, timeout=10).json()
                value = res["data"]["result"][0]["value"][1] if res["data"]["result"] else None
                if value == "40":
                    seen[r.name] = time.monotonic() - acked
            assert time.monotonic() - acked < 30, f"not visible everywhere after 30 s: {seen}"
            time.sleep(0.05)
        assert seen[sender.name] < 0.5        # read your writes on the replica that acknowledged it
        delays.extend(v for k, v in seen.items() if k != sender.name)
        at = f"{time.time():.3f}"
        answers = {r.name: httpx.get(r.api_url + "/api/v1/query", params={"query": query, "time": at})
                   .json()["data"]["result"] for r in c.replicas}
        assert len({str(a) for a in answers.values()}) == 1, answers
    delays.sort()
    print(f"visibility delays on the other replicas: median {delays[len(delays) // 2]:.2f} s, "
          f"max {delays[-1]:.2f} s")
    # cluster.visibility (2 s) plus the documented margin for a loaded machine (docs/cluster.md): 1 s
    assert delays[-1] <= 2.0 + 1.0, delays


def _spans(service: str, n: int):
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    mem = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(mem))
    tracer = provider.get_tracer("tocsin-tests")
    end = time.time_ns()
    for _ in range(n):
        tracer.start_span("GET /", kind=SpanKind.SERVER, start_time=end - 20_000_000).end(end_time=end)
    return mem.get_finished_spans()
