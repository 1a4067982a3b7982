"""A corpus of malformed OTLP requests against the real HTTP app and gRPC server.

Each is answered with a 4xx / INVALID_ARGUMENT and a reason, or with partial
success naming what was dropped while the good items of the batch are kept;
after each, a good request is sent and must be counted (the server keeps
serving)."""
from __future__ import annotations

import itertools
import json
import math
import time

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.receiver.spans import METRIC

PB = {"Content-Type": "application/x-protobuf"}
JS = {"Content-Type": "application/json"}
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
METRICS = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"
_seq = itertools.count()


def span(name="GET /", start_off=1_000_000, **kw) -> trace_pb2.Span:
    now = time.time_ns()
    return trace_pb2.Span(name=name, kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=now - start_off,
                          end_time_unix_nano=now, **kw)


def trace_request(service: str, spans) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = service
    rs.scope_spans.add().spans.extend(spans)
    return req


def metric_request(*metrics) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = "corpus"
    rm.scope_metrics.add().metrics.extend(metrics)
    return req


def span_count(stack, service: str) -> int:
    from conftest import read_hist
    if not [s for s in stack.aggregator.catalog.all() if dict(s.labels).get("service_name") == service]:
        return 0
    return int(read_hist(stack.aggregator, METRIC, service_name=service)[1].sum())


@pytest.fixture
def keeps_serving(stack):
    """After the test: one good request over each transport, each counted."""
    yield
    svc = f"after-bad-{next(_seq)}"
    r = httpx.post(stack.http_url + "/v1/traces", content=trace_request(svc, [span()]).SerializeToString(),
                   headers=PB)
    assert r.status_code == 200
    with grpc.insecure_channel(stack.grpc_target) as ch:
        assert ch.unary_unary(TRACES)(trace_request(svc, [span()]).SerializeToString(), timeout=5) == b""
    assert span_count(stack, svc) == 2


def status_of(r) -> status_pb2.Status:
    if r.headers["content-type"].startswith("application/x-protobuf"):
        return status_pb2.Status.FromString(r.content)
    return json_format.Parse(r.content, status_pb2.Status())


def post(stack, path, body: bytes, headers=PB):
    return httpx.post(stack.http_url + path, content=body, headers=headers, timeout=30)


def grpc_raw(stack, method, body: bytes):
    with grpc.insecure_channel(stack.grpc_target,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as ch:
        return ch.unary_unary(method)(body, timeout=10)


def refused_400(stack, path, method, body: bytes, reason: str, headers=PB, grpc_too=True):
    r = post(stack, path, body, headers)
    assert r.status_code == 400, (r.status_code, r.text)
    assert reason in status_of(r).message, status_of(r).message
    if grpc_too:
        with pytest.raises(grpc.RpcError) as e:
            grpc_raw(stack, method, body)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert reason in e.value.details()


# -- protobuf ------------------------------------------------------------------
def test_truncated_protobuf(stack, keeps_serving):
    body = trace_request("trunc", [span() for _ in range(20)]).SerializeToString()
    for cut in (1, len(body) // 2, len(body) - 1):
        refused_400(stack, "/v1/traces", TRACES, body[:cut], "cannot decode protobuf")


@pytest.mark.parametrize("garbage", [b"\xff" * 64, b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
                                     bytes(range(256)), b"\x0a\x05hello"])
def test_garbage_protobuf(stack, keeps_serving, garbage):
    refused_400(stack, "/v1/traces", TRACES, garbage, "cannot decode protobuf")
    refused_400(stack, "/v1/metrics", METRICS, garbage, "cannot decode protobuf")


def test_invalid_utf8_in_protobuf_strings(stack, keeps_serving):
    body = trace_request("XXXX", [span()]).SerializeToString().replace(b"XXXX", b"\xff\xfe\xfd\xfc")
    refused_400(stack, "/v1/traces", TRACES, body, "cannot decode protobuf")


def _ld(field: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field."""
    def varint(n):
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def test_deeply_nested_protobuf_any_value(stack, keeps_serving):
    # Built by hand: the protobuf library refuses to build a message this deep.
    any_value = _ld(1, b"bottom")                                   # AnyValue.string_value
    for _ in range(200):                                            # AnyValue.kvlist_value.values[0].value
        any_value = _ld(6, _ld(1, _ld(1, b"k") + _ld(2, any_value)))
    span_bytes = span().SerializeToString() + _ld(9, _ld(1, b"deep") + _ld(2, any_value))   # Span.attributes
    body = _ld(1, _ld(2, _ld(2, span_bytes)))                       # resource_spans.scope_spans.spans
    refused_400(stack, "/v1/traces", TRACES, body, "cannot decode protobuf")


# -- content type and JSON -----------------------------------------------------
@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "", "application/grpc"])
def test_wrong_content_type(stack, keeps_serving, ctype):
    r = post(stack, "/v1/traces", b"{}", {"Content-Type": ctype} if ctype else {})
    assert r.status_code == 415 and "unsupported Content-Type" in status_of(r).message


@pytest.mark.parametrize("body,reason", [
    (b"{", "invalid JSON at line 1"),
    (b"", "invalid JSON at line 1"),
    (b"[1, 2]", "the body must be a JSON object"),
    (b'"x"', "the body must be a JSON object"),
    (b"null", "the body must be a JSON object"),
    (b'{"resourceSpans": "x"}', "invalid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": []}]}]}]}', "invalid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": {}}]}]}]}', "invalid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}', "invalid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "-5"}]}]}]}', "invalid JSON"),
    (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"endTimeUnixNano": 1e400}]}]}]}', "invalid JSON"),
    (b'\xff\xfe{"a": 1}', "invalid JSON"),
    (b'{"resourceSpans": [{"resource": {"attributes": [{"key": "s", "value": {"stringValue": "\xff"}}]}}]}',
     "invalid JSON"),
])
def test_invalid_json_and_wrong_json_types(stack, keeps_serving, body, reason):
    r = post(stack, "/v1/traces", body, JS)
    assert r.status_code == 400, r.text
    assert reason in status_of(r).message, status_of(r).message


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_json_nested_very_deep(stack, keeps_serving, depth):
    for body in (b"[" * depth + b"]" * depth,
                 b'{"resourceSpans": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}",
                 b'{"x": ' * depth + b"1" + b"}" * depth):
        r = post(stack, "/v1/traces", body, JS)
        assert r.status_code == 400, r.text[:200]


@pytest.mark.parametrize("depth", [20, 300, 5_000])
def test_json_deep_any_value_kvlist(stack, keeps_serving, depth):
    """Valid OTLP, nested deep: accepted while protobuf can hold it, else 400."""
    v = '{"stringValue": "bottom"}'
    for _ in range(depth):
        v = '{"kvlistValue": {"values": [{"key": "k", "value": ' + v + '}]}}'
    now = time.time_ns()
    doc = ('{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": '
           f'"deepjson{depth}"}}}}]}}, "scopeSpans": [{{"spans": [{{"name": "x", "kind": 2, '
           f'"startTimeUnixNano": "{now - 10}", "endTimeUnixNano": "{now}", '
           '"attributes": [{"key": "deep", "value": ' + v + '}]}]}]}]}')
    r = post(stack, "/v1/traces", doc.encode(), JS)
    if depth <= 20:   # protobuf parses at most 100 message levels (~33 AnyValue levels)
        assert r.status_code == 200 and span_count(stack, f"deepjson{depth}") == 1
    else:
        assert r.status_code == 400, r.text[:200]


# -- huge strings ----------------------------------------------------------------
def test_huge_strings_reject_the_item_and_keep_the_others(stack, keeps_serving):
    huge = "x" * 100_000
    spans = [span(), span(name=huge), span()]
    spans.append(span(attributes=[{"key": "http.route", "value": {"string_value": huge}}]))
    r = post(stack, "/v1/traces", trace_request("huge", spans).SerializeToString())
    assert r.status_code == 200
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    ps = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert ps.rejected_spans == 2 and "attribute too long" in ps.error_message
    assert span_count(stack, "huge") == 2
    # a huge service name is cut, not refused
    r = post(stack, "/v1/traces", trace_request("s" * 50_000, [span()]).SerializeToString())
    assert r.status_code == 200


# -- metric values -----------------------------------------------------------------
def gauge(name, *values, as_int=False):
    m = metrics_pb2.Metric(name=name)
    for v in values:
        dp = m.gauge.data_points.add(time_unix_nano=time.time_ns())
        if as_int:
            dp.as_int = v
        else:
            dp.as_double = v
    return m


def read_samples(stack, metric):
    from conftest import read_samples as rs
    return rs(stack.aggregator, metric)


def partial(r):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
    assert r.status_code == 200, r.text
    return ExportMetricsServiceResponse.FromString(r.content).partial_success


def test_nan_and_inf_in_gauges_and_sums(stack, keeps_serving):
    ms = [gauge("corpus.gauge", 1.0, math.nan, math.inf, -math.inf, 2.0)]
    s = metrics_pb2.Metric(name="corpus.requests")
    s.sum.is_monotonic = True
    s.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    for v in (5.0, math.nan, math.inf):
        s.sum.data_points.add(time_unix_nano=time.time_ns(), as_double=v)
    ms.append(s)
    ps = partial(post(stack, "/v1/metrics", metric_request(*ms).SerializeToString()))
    # a gauge may be NaN or ±inf (as in Prometheus); a counter may not: it would poison rate() and running totals
    assert ps.rejected_data_points == 2 and "2 non finite value" in ps.error_message
    _, values = read_samples(stack, "corpus_gauge")
    assert len(values) == 5 and np.isnan(values).sum() == 1 and np.isinf(values).sum() == 2


def test_nan_inf_histogram_sums(stack, keeps_serving):
    m = metrics_pb2.Metric(name="corpus.hist", unit="s")
    m.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    now = time.time_ns()
    for total in (1.5, math.nan, math.inf, -math.inf):
        m.histogram.data_points.add(time_unix_nano=now, start_time_unix_nano=now - 10**9, count=3, sum=total,
                                    explicit_bounds=[0.1, 1.0], bucket_counts=[1, 1, 1])
    e = metrics_pb2.Metric(name="corpus.expo", unit="s")
    e.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    for total in (1.5, math.nan, math.inf):
        dp = e.exponential_histogram.data_points.add(time_unix_nano=now, count=2, sum=total, scale=3)
        dp.positive.bucket_counts.extend([1, 1])
    ps = partial(post(stack, "/v1/metrics", metric_request(m, e).SerializeToString()))
    assert ps.rejected_data_points == 5, ps
    assert "2 nan sum" in ps.error_message and "3 infinite sum" in ps.error_message
    from conftest import read_hist
    assert int(read_hist(stack.aggregator, "corpus_hist_seconds")[1].sum()) == 3


def test_negative_counts_in_json_are_400(stack, keeps_serving):
    now = str(time.time_ns())
    doc = {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "neg", "histogram": {
        "aggregationTemporality": 1, "dataPoints": [{"timeUnixNano": now, "count": "-3",
                                                       "bucketCounts": ["-1", "2"], "explicitBounds": [1.0]}]}}]}]}]}
    r = post(stack, "/v1/metrics", json.dumps(doc).encode(), JS)
    assert r.status_code == 400 and "invalid JSON" in status_of(r).message


def test_negative_int_counter_and_huge_bucket_counts(stack, keeps_serving):
    s = metrics_pb2.Metric(name="corpus.neg_counter")
    s.sum.is_monotonic = True
    s.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    s.sum.data_points.add(time_unix_nano=time.time_ns(), as_int=-5)
    h = metrics_pb2.Metric(name="corpus.huge_buckets", unit="s")
    h.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    now = time.time_ns()
    big = 2**64 - 1
    h.histogram.data_points.add(time_unix_nano=now, count=big, sum=1.0, explicit_bounds=[1.0],
                                bucket_counts=[big, 0])
    h.histogram.data_points.add(time_unix_nano=now, count=2, sum=1.0, explicit_bounds=[1.0], bucket_counts=[1, 1])
    e = metrics_pb2.Metric(name="corpus.huge_expo", unit="s")
    e.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    dp = e.exponential_histogram.data_points.add(time_unix_nano=now, count=big, sum=1.0, scale=0)
    dp.positive.bucket_counts.append(big)
    ps = partial(post(stack, "/v1/metrics", metric_request(s, h, e).SerializeToString()))
    assert ps.rejected_data_points == 2 and "2 count too large" in ps.error_message, ps


def test_timestamps_past_int64_are_rejected_not_crashing(stack, keeps_serving):
    far = 2**64 - 1
    g = metrics_pb2.Metric(name="corpus.far")
    g.gauge.data_points.add(time_unix_nano=far, as_double=1.0)
    g.gauge.data_points.add(time_unix_nano=time.time_ns(), as_double=1.0)
    h = metrics_pb2.Metric(name="corpus.far_hist", unit="s")
    h.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    h.histogram.data_points.add(time_unix_nano=far, count=1, bucket_counts=[1])
    e = metrics_pb2.Metric(name="corpus.far_expo", unit="s")
    e.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    e.exponential_histogram.data_points.add(time_unix_nano=far, count=1, zero_count=1)
    ps = partial(post(stack, "/v1/metrics", metric_request(g, h, e).SerializeToString()))
    assert ps.rejected_data_points == 3 and "3 in future" in ps.error_message


def test_bucket_counts_not_matching_bounds(stack, keeps_serving):
    m = metrics_pb2.Metric(name="corpus.bad_buckets", unit="s")
    m.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    now = time.time_ns()
    good = dict(time_unix_nano=now, count=3, sum=1.0, explicit_bounds=[0.1, 1.0], bucket_counts=[1, 1, 1])
    m.histogram.data_points.add(**good)
    m.histogram.data_points.add(**{**good, "bucket_counts": [1, 2]})                      # one too few
    m.histogram.data_points.add(**{**good, "explicit_bounds": [1.0, 0.1]})                # not increasing
    m.histogram.data_points.add(**{**good, "explicit_bounds": [0.1, math.nan]})           # NaN bound
    m.histogram.data_points.add(**{**good, "count": 4})                                   # count ≠ sum(buckets)
    ps = partial(post(stack, "/v1/metrics", metric_request(m).SerializeToString()))
    assert ps.rejected_data_points == 4
    for reason in ("bucket counts do not match bounds", "bounds not increasing", "count does not match buckets"):
        assert reason in ps.error_message


@pytest.mark.parametrize("scale,offset", [(100, 0), (-100, 0), (2**31 - 1, 0), (-(2**31), 0),
                                          (20, 2**31 - 1), (20, -(2**31)), (-10, 2**31 - 1), (0, -(2**31))])
def test_absurd_exponential_scales_and_offsets(stack, keeps_serving, scale, offset):
    e = metrics_pb2.Metric(name="corpus.expo_absurd", unit="s")
    e.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    now = time.time_ns()
    dp = e.exponential_histogram.data_points.add(time_unix_nano=now, count=3, sum=1.0, scale=scale,
                                                 zero_count=1)
    dp.positive.offset = offset
    dp.positive.bucket_counts.extend([1, 1])
    ok = e.exponential_histogram.data_points.add(time_unix_nano=now, count=1, sum=0.5, scale=2)
    ok.positive.bucket_counts.append(1)
    ok.attributes.add(key="good").value.string_value = "yes"
    ps = partial(post(stack, "/v1/metrics", metric_request(e).SerializeToString()))
    if not -10 <= scale <= 20:
        assert ps.rejected_data_points == 1 and "scale out of range" in ps.error_message


def test_gauge_point_without_time_and_metric_without_name(stack, keeps_serving):
    m = gauge("corpus.notime", 1.0)
    m.gauge.data_points.add(as_double=2.0)                 # no time
    nameless = gauge("", 3.0)
    ps = partial(post(stack, "/v1/metrics", metric_request(m, nameless).SerializeToString()))
    assert ps.rejected_data_points == 2
    assert "missing time" in ps.error_message and "missing metric name" in ps.error_message


def test_spans_with_absurd_times(stack, keeps_serving):
    now = time.time_ns()
    spans = [span(),
             trace_pb2.Span(name="a", kind=2, start_time_unix_nano=0, end_time_unix_nano=now),          # start 0
             trace_pb2.Span(name="b", kind=2, start_time_unix_nano=now, end_time_unix_nano=now - 5),    # reversed
             trace_pb2.Span(name="c", kind=2, start_time_unix_nano=1, end_time_unix_nano=2**64 - 1),    # far future
             trace_pb2.Span(name="d", kind=2, start_time_unix_nano=1, end_time_unix_nano=2)]            # 1970
    r = post(stack, "/v1/traces", trace_request("times", spans).SerializeToString())
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    ps = ExportTraceServiceResponse.FromString(r.content).partial_success
    assert r.status_code == 200 and ps.rejected_spans == 4, ps
    assert span_count(stack, "times") == 1
