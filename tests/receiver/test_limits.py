"""Backpressure and tenants on real servers: rate limits (429 / RESOURCE_EXHAUSTED
+ RetryInfo), concurrency and memory limits (503 / UNAVAILABLE + RetryInfo), the
API guard above the hard limit, the tenant label and its trip through the WAL."""
import asyncio
import time

import grpc
import httpx
import pytest
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1 import trace_pb2
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from collector.aggregate.aggregator import Aggregator
from collector.auth import Tokens
from collector.model import SeriesCatalog
from collector.receiver.ingest import Ingest
from collector.receiver.limits import (HARD, MIB, OK, SOFT, Limiter, LimitSettings, MemoryGauge, MemoryGuard,
                                       Refused, TokenBucket, count_items)
from collector.receiver.settings import ReceiverSettings
from collector.receiver.spans import METRIC
from collector.selfmetrics import SelfMetrics
from collector.wal import SIGNAL_TRACES, TENANT_FLAG, WriteAheadLog
from limit_servers import serve

PB = {"Content-Type": "application/x-protobuf"}


def traces(n: int, service: str = "svc") -> ExportTraceServiceRequest:
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    ss = rs.scope_spans.add()
    for _ in range(n):
        ss.spans.append(trace_pb2.Span(name="GET /", kind=trace_pb2.Span.SPAN_KIND_SERVER,
                                       start_time_unix_nano=now - 1_000_000, end_time_unix_nano=now))
    return req


def counted(agg: Aggregator, **match) -> int:
    from conftest import read_hist
    if not [s for s in agg.catalog.all() if s.metric == METRIC
            and all(dict(s.labels).get(k) == v for k, v in match.items())]:
        return 0
    return int(read_hist(agg, METRIC, **match)[1].sum())


class FakeRss:
    """A stand-in for /proc/self/statm: the test sets the RSS."""

    def __init__(self):
        self.value = 100 * MIB

    def __call__(self) -> int:
        return self.value


def make_ingest(limits: LimitSettings, memory: MemoryGauge | None = None, tenant_label: bool = False) -> Ingest:
    metrics = SelfMetrics()
    settings = ReceiverSettings(limits=limits, tenant_label=tenant_label)
    agg = Aggregator(SeriesCatalog())
    return Ingest(agg, settings, metrics, limiter=Limiter(limits, metrics, memory=memory))


def retry_info(status: status_pb2.Status) -> float:
    for d in status.details:
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            ri = error_details_pb2.RetryInfo()
            d.Unpack(ri)
            return ri.retry_delay.ToNanoseconds() / 1e9
    raise AssertionError(f"no RetryInfo in {status}")


def grpc_status(err: grpc.RpcError) -> status_pb2.Status:
    md = dict(err.trailing_metadata() or ())
    return status_pb2.Status.FromString(md["grpc-status-details-bin"])


# -- units -------------------------------------------------------------------
def test_token_bucket_burst_debt_and_wait():
    b = TokenBucket(rate=100, capacity=200, now=0.0)
    assert b.take(150, 0.0) == 0 and b.take(50, 0.0) == 0
    assert b.take(10, 0.0) == pytest.approx(0.1)       # empty: 10 tokens take 0.1 s
    assert b.take(10, 0.1) == 0
    # larger than the burst: allowed on a full bucket, then the bucket is in debt
    b = TokenBucket(rate=100, capacity=200, now=0.0)
    assert b.take(1000, 0.0) == 0
    assert b.take(1, 1.0) == pytest.approx(7.01)        # 800 tokens of debt - 100 refilled + 1
    assert b.take(1, 8.1) == 0


def test_memory_gauge_reads_at_most_every_interval():
    rss, now, reads = FakeRss(), [0.0], []

    def read():
        reads.append(1)
        return rss()
    g = MemoryGauge(200 * MIB, 300 * MIB, interval=0.1, read_rss=read, clock=lambda: now[0])
    assert g.state() == OK
    rss.value = 250 * MIB
    assert g.state() == OK                 # cached: not read again within 100 ms
    now[0] = 0.11
    assert g.state() == SOFT
    rss.value, now[0] = 301 * MIB, 0.25
    assert g.state() == HARD
    assert len(reads) == 4                 # once at construction (availability check), then 3
    assert MemoryGauge(0, 0).state() == OK  # off: never reads


def test_settings_are_validated():
    with pytest.raises(ValueError, match="hard limit"):
        LimitSettings(soft_limit_mib=200, hard_limit_mib=100)
    with pytest.raises(ValueError, match="max_concurrent_requests"):
        LimitSettings(max_concurrent_requests=0)


def test_config_limits_section():
    from collector.config import ConfigError, load_config
    from collector.assemble import receiver_settings
    cfg = load_config(environ={"TOCSIN_LIMITS__RATE__SPANS_PER_SECOND": "500",
                               "TOCSIN_LIMITS__MEMORY__SOFT_LIMIT_MIB": "512",
                               "TOCSIN_LIMITS__MEMORY__HARD_LIMIT_MIB": "768"})
    lim = receiver_settings(cfg).limits
    assert (lim.spans_per_second, lim.data_points_per_second, lim.max_concurrent_requests) == (500, 0, 64)
    assert (lim.soft_limit_mib, lim.hard_limit_mib, lim.burst_seconds, lim.retry_after_seconds) == (512, 768, 1, 1)
    assert receiver_settings(cfg).tenant_label is False
    with_tokens = load_config(environ={"TOCSIN_AUTH__INGEST_TOKENS": '[{token_env: X, tenant: team-a}]'})
    assert receiver_settings(with_tokens).tenant_label is True
    with pytest.raises(ConfigError, match="hard_limit_mib"):
        load_config(environ={"TOCSIN_LIMITS__MEMORY__SOFT_LIMIT_MIB": "512",
                             "TOCSIN_LIMITS__MEMORY__HARD_LIMIT_MIB": "256"})


def test_count_items_counts_spans_and_points():
    assert count_items("traces", traces(7)) == 7
    m = ExportMetricsServiceRequest()
    sm = m.resource_metrics.add().scope_metrics.add()
    g = sm.metrics.add(name="g")
    g.gauge.data_points.add()
    g.gauge.data_points.add()
    sm.metrics.add(name="h").histogram.data_points.add()
    sm.metrics.add(name="empty")
    assert count_items("metrics", m) == 3


# -- rate limit on the wire --------------------------------------------------
def test_rate_limit_http_429_and_grpc_resource_exhausted_with_retry_info():
    ingest = make_ingest(LimitSettings(spans_per_second=100, burst_seconds=1))
    with serve(ingest) as s:
        body = traces(80).SerializeToString()
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=PB).status_code == 200
        r = httpx.post(s.http_url + "/v1/traces", content=body, headers=PB)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        st = status_pb2.Status.FromString(r.content)
        assert st.code == code_pb2.RESOURCE_EXHAUSTED and "rate limit of 100 spans/s" in st.message
        # 60 tokens missing at 100/s: 0.6 s, less whatever refilled while the requests were sent
        assert 0 < retry_info(st) <= 0.6 + 1e-6
        # refused whole, before aggregation: only the first request is counted
        assert counted(ingest.aggregator) == 80
        with grpc.insecure_channel(s.grpc_target) as ch:
            with pytest.raises(grpc.RpcError) as e:
                trace_service_pb2_grpc.TraceServiceStub(ch).Export(traces(80), timeout=5)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retry_info(grpc_status(e.value)) > 0
        # JSON bodies get the same answer in JSON
        r = httpx.post(s.http_url + "/v1/traces", json={"resourceSpans": []})
        assert r.status_code == 200          # no items: nothing to charge
        m = ingest.metrics
        assert m.requests_refused.labels("traces", "rate_limited")._value.get() == 2
        assert m.items_rejected.labels("traces", "rate_limited")._value.get() == 160
        time.sleep(0.7)
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=PB).status_code == 200
        assert counted(ingest.aggregator) == 160


def test_rate_limits_are_per_tenant_and_tenants_label_series():
    tokens = Tokens(ingest=((b"tok-a", "team-a"), (b"tok-b", "team-b")))
    ingest = make_ingest(LimitSettings(spans_per_second=50, burst_seconds=1), tenant_label=True)
    with serve(ingest, tokens) as s:
        body = traces(50).SerializeToString()
        a = {**PB, "Authorization": "Bearer tok-a"}
        b = {**PB, "Authorization": "Bearer tok-b"}
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=a).status_code == 200
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=a).status_code == 429
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=b).status_code == 200   # own bucket
        with grpc.insecure_channel(s.grpc_target) as ch:
            stub = trace_service_pb2_grpc.TraceServiceStub(ch)
            with pytest.raises(grpc.RpcError) as e:
                stub.Export(traces(10), timeout=5, metadata=[("authorization", "Bearer tok-b")])
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    agg = ingest.aggregator
    assert counted(agg, tenant="team-a") == 50 and counted(agg, tenant="team-b") == 50
    assert all(dict(x.labels).get("tenant") in ("team-a", "team-b") for x in agg.catalog.all())


def test_tenant_label_wins_over_an_attribute_and_is_absent_without_tokens():
    tokens = Tokens(ingest=((b"tok-a", "team-a"),))
    ingest = make_ingest(LimitSettings(), tenant_label=True)
    req = traces(3)
    req.resource_spans[0].scope_spans[0].spans[0].attributes.add(key="tenant").value.string_value = "team-z"
    with serve(ingest, tokens) as s:
        with grpc.insecure_channel(s.grpc_target) as ch:
            trace_service_pb2_grpc.TraceServiceStub(ch).Export(req, timeout=5,
                                                                metadata=[("authorization", "Bearer tok-a")])
    assert {dict(x.labels)["tenant"] for x in ingest.aggregator.catalog.all()} == {"team-a"}
    plain = make_ingest(LimitSettings())
    with serve(plain) as s:
        assert httpx.post(s.http_url + "/v1/traces", content=traces(3).SerializeToString(),
                          headers=PB).status_code == 200
    assert all("tenant" not in dict(x.labels) for x in plain.aggregator.catalog.all())


# -- concurrency and memory ---------------------------------------------------
def test_concurrency_limit_503_and_unavailable():
    ingest = make_ingest(LimitSettings(max_concurrent_requests=2, retry_after_seconds=2))
    with serve(ingest) as s:
        ingest.limiter.enter("traces")
        ingest.limiter.enter("traces")   # two requests "in flight"
        try:
            r = httpx.post(s.http_url + "/v1/traces", content=traces(1).SerializeToString(), headers=PB)
            assert r.status_code == 503 and r.headers["retry-after"] == "2"
            st = status_pb2.Status.FromString(r.content)
            assert st.code == code_pb2.UNAVAILABLE and retry_info(st) == 2
            with grpc.insecure_channel(s.grpc_target) as ch:
                with pytest.raises(grpc.RpcError) as e:
                    trace_service_pb2_grpc.TraceServiceStub(ch).Export(traces(1), timeout=5)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE and retry_info(grpc_status(e.value)) == 2
        finally:
            ingest.limiter.leave()
            ingest.limiter.leave()
        assert httpx.post(s.http_url + "/v1/traces", content=traces(1).SerializeToString(),
                          headers=PB).status_code == 200
        assert ingest.limiter.in_flight == 0     # every admitted request left, errors included
        assert httpx.post(s.http_url + "/v1/traces", content=b"\xff", headers=PB).status_code == 400
        assert ingest.limiter.in_flight == 0
    assert ingest.metrics.requests_refused.labels("traces", "too_many_requests")._value.get() == 2


def test_memory_soft_refuses_ingest_hard_refuses_api_but_health():
    rss = FakeRss()
    gauge = MemoryGauge(200 * MIB, 300 * MIB, interval=0, read_rss=rss)
    ingest = make_ingest(LimitSettings(soft_limit_mib=200, hard_limit_mib=300), memory=gauge)

    async def ok(_):
        return PlainTextResponse("ok")
    guarded = MemoryGuard(Starlette(routes=[Route("/-/healthy", ok), Route("/metrics", ok)]), ingest.limiter)

    class api:
        @staticmethod
        def get(path):
            async def go():
                async with httpx.AsyncClient(transport=httpx.ASGITransport(guarded), base_url="http://api") as c:
                    return await c.get(path)
            return asyncio.run(go())
    with serve(ingest) as s:
        body = traces(5).SerializeToString()
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=PB).status_code == 200
        rss.value = 250 * MIB
        r = httpx.post(s.http_url + "/v1/traces", content=body, headers=PB)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "memory limit reached" in status_pb2.Status.FromString(r.content).message
        with grpc.insecure_channel(s.grpc_target) as ch:
            with pytest.raises(grpc.RpcError) as e:
                trace_service_pb2_grpc.TraceServiceStub(ch).Export(traces(1), timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE and retry_info(grpc_status(e.value)) == 1
        assert api.get("/metrics").status_code == 200          # soft: the API still answers
        rss.value = 350 * MIB
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=PB).status_code == 503
        r = api.get("/metrics")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert api.get("/-/healthy").status_code == 200
        rss.value = 100 * MIB
        assert httpx.post(s.http_url + "/v1/traces", content=body, headers=PB).status_code == 200
    refused = ingest.metrics.requests_refused
    assert refused.labels("traces", "memory_soft")._value.get() == 2
    assert refused.labels("traces", "memory_hard")._value.get() == 1
    assert refused.labels("api", "memory_hard")._value.get() == 1
    assert counted(ingest.aggregator) == 10


# -- tenant through the WAL ---------------------------------------------------
def test_wal_carries_the_tenant_and_replays_old_records(tmp_path):
    wal = WriteAheadLog(tmp_path)
    now = time.time_ns()
    wal.append_sync(SIGNAL_TRACES, traces(3, "old").SerializeToString(), now)               # first format
    wal.append_sync(SIGNAL_TRACES, traces(4, "new").SerializeToString(), now, tenant="team-a")
    wal.append_sync(SIGNAL_TRACES, traces(5, "new").SerializeToString(), now, tenant="")    # labelled, empty
    wal.rotate()
    records = list(wal.replay(after=0))
    assert [(r.signal, r.tenant) for r in records] == [(SIGNAL_TRACES, None), (SIGNAL_TRACES, "team-a"),
                                                       (SIGNAL_TRACES, "")]
    raw = (tmp_path / f"{records[1].segment:016d}.wal").read_bytes()
    assert raw[8 + len(records[0].payload) + 17] & TENANT_FLAG   # the second record's signal byte
    ingest = make_ingest(LimitSettings())
    for r in records:
        ingest.replay(r)
    agg = ingest.aggregator
    assert counted(agg, service_name="old") == 3
    assert all("tenant" not in dict(s.labels) for s in agg.catalog.all() if dict(s.labels)["service_name"] == "old")
    assert counted(agg, service_name="new", tenant="team-a") == 4
    wal.close()


def test_refused_error_formats():
    e = Refused("x", "memory_soft", 0.2)
    assert e.retry_after_header == "1"
    assert Refused("x", "memory_soft", 2.5).retry_after_header == "3"
    assert e.http_status == 503 and e.grpc_code == grpc.StatusCode.UNAVAILABLE
    st = status_pb2.Status.FromString(e.grpc_trailers()[0][1])
    assert st.code == code_pb2.UNAVAILABLE and retry_info(st) == pytest.approx(0.2)
