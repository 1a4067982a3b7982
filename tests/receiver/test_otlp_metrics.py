"""OTLP metrics: the real SDK (explicit and exponential histograms, delta and
cumulative, HTTP and gRPC) and hand-built requests for resets and bad points."""
import math
import time

import httpx
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsServiceRequest,
                                                                            ExportMetricsServiceResponse)
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import (ExplicitBucketHistogramAggregation,
                                            ExponentialBucketHistogramAggregation, View)
from opentelemetry.sdk.resources import Resource

from collector.model import NS

BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
DELTA, CUMULATIVE = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE


def sdk_provider(exporter, service, exponential, bounds=BOUNDS):
    agg = ExponentialBucketHistogramAggregation() if exponential else ExplicitBucketHistogramAggregation(bounds)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": service}),
                         views=[View(instrument_type=Histogram, aggregation=agg)])


def exporter(stack, transport, temporality):
    pref = {Histogram: temporality, Counter: temporality, UpDownCounter: temporality}
    if transport == "http":
        return HttpMetricExporter(endpoint=stack.http_url + "/v1/metrics", preferred_temporality=pref)
    return GrpcMetricExporter(endpoint=stack.grpc_target, insecure=True, preferred_temporality=pref)


@pytest.mark.parametrize("transport", ["http", "grpc"])
@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE])
@pytest.mark.parametrize("exponential", [False, True])
def test_sdk_histograms(stack, helpers, transport, temporality, exponential):
    service = f"m-{transport}-{temporality.name}-{exponential}"
    provider = sdk_provider(exporter(stack, transport, temporality), service, exponential)
    hist = provider.get_meter("t").create_histogram("http.server.request.duration", unit="s")
    rng = np.random.default_rng(3)
    values = rng.lognormal(np.log(0.08), 0.7, 3000).clip(0.002, 10)
    for part in np.array_split(values, 3):
        for v in part:
            hist.record(float(v), {"http.route": "/a"})
        assert provider.force_flush(10_000)
    assert provider.force_flush(10_000)   # nothing new: a cumulative repeat must not count twice
    provider.shutdown()
    name = "http_server_request_duration_seconds"
    idx, cnt, bounds, total = helpers.read_hist(stack.aggregator, name, service_name=service, http_route="/a")
    assert int(cnt.sum()) == 3000
    assert total == pytest.approx(values.sum(), rel=1e-9)
    if exponential:
        assert bounds is None
        # precision is the exponential layout's: SDK scale here is 3 or more → ≤ 4.4 % + HDR's 0.4 %
        helpers.assert_quantiles(idx, cnt, values, rtol=0.05)
    else:
        assert bounds == tuple(BOUNDS)
        expected = np.bincount(np.searchsorted(BOUNDS, values, side="left"), minlength=len(BOUNDS) + 1)
        assert cnt.tolist() == expected.tolist()
    (series,) = helpers.series_of(stack.aggregator, name, service_name=service)
    assert series.kind == ("hdr" if exponential else "custom") and series.unit == "s"


@pytest.mark.parametrize("exponential", [False, True])
def test_milliseconds_become_seconds(stack, helpers, exponential):
    service = f"ms-{exponential}"
    provider = sdk_provider(exporter(stack, "http", DELTA), service, exponential, bounds=[5, 50, 500])
    hist = provider.get_meter("t").create_histogram("rpc.server.duration", unit="ms")
    values = np.array([3.0, 20.0, 20.0, 120.0, 900.0])
    for v in values:
        hist.record(float(v))
    provider.force_flush(10_000)
    provider.shutdown()
    idx, cnt, bounds, total = helpers.read_hist(stack.aggregator, "rpc_server_duration_seconds", service_name=service)
    assert cnt.sum() == 5 and total == pytest.approx(values.sum() / 1000)
    if exponential:
        helpers.assert_quantiles(idx, cnt, values / 1000, rtol=0.03)   # SDK picks scale 4: ≤ 2.2 % + 0.4 %
    else:
        assert bounds == pytest.approx((0.005, 0.05, 0.5)) and cnt.tolist() == [1, 2, 1, 1]


@pytest.mark.parametrize("temporality", [DELTA, CUMULATIVE])
def test_sdk_counters_and_updown(stack, helpers, temporality):
    service = f"counters-{temporality.name}"
    provider = sdk_provider(exporter(stack, "http", temporality), service, False)
    meter = provider.get_meter("t")
    c = meter.create_counter("app.requests", unit="{request}")
    q = meter.create_up_down_counter("app.queue.length", unit="{item}")
    for step in (5, 7):
        c.add(step, {"route": "/x"})
        q.add(step - 6)
        provider.force_flush(10_000)
    provider.shutdown()
    _, values = helpers.read_samples(stack.aggregator, "app_requests_total", service_name=service, route="/x")
    # shutdown() may export the cumulative state once more: same totals
    assert values.tolist()[:2] == [5.0, 12.0] and set(values.tolist()[2:]) <= {12.0}
    _, queue = helpers.read_samples(stack.aggregator, "app_queue_length", service_name=service)
    assert queue.tolist()[:2] == [-1.0, 0.0] and set(queue.tolist()[2:]) <= {0.0}


# -- hand-built requests --------------------------------------------------------------------------

def request(metric: metrics_pb2.Metric, service: str) -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.add(key="service.name").value.string_value = service
    rm.resource.attributes.add(key="service.instance.id").value.string_value = "i-1"
    rm.scope_metrics.add().metrics.append(metric)
    return req


def post(stack, req) -> ExportMetricsServiceResponse:
    r = httpx.post(stack.http_url + "/v1/metrics", content=req.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text
    return ExportMetricsServiceResponse.FromString(r.content)


def explicit(name, points, temporality=2):
    m = metrics_pb2.Metric(name=name, unit="s")
    m.histogram.aggregation_temporality = temporality
    for start, t, counts, bounds in points:
        m.histogram.data_points.add(start_time_unix_nano=start, time_unix_nano=t, count=sum(counts),
                                    sum=float(sum(counts)), bucket_counts=counts, explicit_bounds=bounds)
    return m


def test_cumulative_explicit_with_resets(stack, helpers):
    now = time.time_ns()
    s1, s2 = now - 60 * NS, now - 5 * NS
    b = [0.1, 1.0, 10.0]
    seq = [(s1, now - 50 * NS, [1, 2, 3, 0]),   # first point, series started recently: counted
           (s1, now - 40 * NS, [2, 4, 6, 1]),   # +[1, 2, 3, 1]
           (s1, now - 40 * NS, [2, 4, 6, 1]),   # a retry: nothing
           (s1, now - 30 * NS, [1, 0, 0, 0]),   # a count went down: reset, counted as is
           (s2, now - 4 * NS, [0, 1, 0, 0]),    # new start time: reset
           (s2, now - 3 * NS, [0, 3, 0, 0])]    # +[0, 2, 0, 0]
    for start, t, counts in seq:       # one request per point, as an exporter sends them
        assert not post(stack, request(explicit("jobs.duration", [(start, t, counts, b)]), "resets")).HasField(
            "partial_success")
    _, cnt, bounds, total = helpers.read_hist(stack.aggregator, "jobs_duration_seconds", service_name="resets")
    assert bounds == (0.1, 1.0, 10.0) and cnt.tolist() == [3, 7, 6, 1] and total == 17.0
    (series,) = helpers.series_of(stack.aggregator, "jobs_duration_seconds", service_name="resets")
    assert dict(series.labels) == {"service_name": "resets", "job": "resets", "instance": "i-1"}


def test_cumulative_series_that_started_long_ago_is_a_baseline(stack, helpers):
    now = time.time_ns()
    start = now - 7200 * NS
    b = [1.0]
    post(stack, request(explicit("old.duration", [(start, now - 20 * NS, [100, 5], b)]), "baseline"))
    post(stack, request(explicit("old.duration", [(start, now - 10 * NS, [103, 6], b)]), "baseline"))
    _, cnt, _, _ = helpers.read_hist(stack.aggregator, "old_duration_seconds", service_name="baseline")
    assert cnt.tolist() == [3, 1]


def expo_metric(name, points, temporality=2):
    m = metrics_pb2.Metric(name=name, unit="s")
    m.exponential_histogram.aggregation_temporality = temporality
    for start, t, scale, offset, counts in points:
        dp = m.exponential_histogram.data_points.add(start_time_unix_nano=start, time_unix_nano=t,
                                                     count=sum(counts), sum=0.5 * sum(counts), scale=scale)
        dp.positive.offset = offset
        dp.positive.bucket_counts.extend(counts)
    return m


def test_cumulative_exponential_with_downscale_and_reset(stack, helpers):
    now = time.time_ns()
    s = now - 30 * NS
    seq = [(s, now - 20 * NS, 1, -2, [1, 1]),      # buckets -2, -1 at scale 1: (0.5, 0.707], (0.707, 1]
           (s, now - 15 * NS, 0, -1, [4, 1]),      # downscaled: bucket -1 at scale 0 was 2 → +2, bucket 0 +1
           (s, now - 10 * NS, 0, -1, [1, 0])]      # decrease: reset, counted as is
    for start, t, scale, offset, counts in seq:
        post(stack, request(expo_metric("expo.duration", [(start, t, scale, offset, counts)]), "expo-resets"))
    idx, cnt, _, _ = helpers.read_hist(stack.aggregator, "expo_duration_seconds", service_name="expo-resets")
    from collector.aggregate import hdr
    # scale 1 midpoints 2**-0.75 = 0.59, 2**-0.25 = 0.84; scale 0 midpoints 2**-0.5 = 0.71, 2**0.5 = 1.41
    want_idx, _, _ = hdr.index_of_seconds(np.array([2**-0.75, 2**-0.25, 2**-0.5, 2**0.5]))
    assert dict(zip(idx.tolist(), cnt.tolist())) == dict(zip(want_idx.tolist(), [1, 1, 3, 1]))


def test_delta_sum_becomes_running_total(stack, helpers):
    now = time.time_ns()
    for k, v in enumerate((5.0, 7.0)):
        m = metrics_pb2.Metric(name="bytes.sent", unit="By")
        m.sum.aggregation_temporality = 1
        m.sum.is_monotonic = True
        m.sum.data_points.add(start_time_unix_nano=now - (3 - k) * NS, time_unix_nano=now - (2 - k) * NS, as_double=v)
        post(stack, request(m, "delta-sum"))
    _, values = helpers.read_samples(stack.aggregator, "bytes_sent_bytes_total", service_name="delta-sum")
    assert values.tolist() == [5.0, 12.0]


def test_invalid_points_are_rejected_and_the_rest_kept(stack, helpers):
    now = time.time_ns()
    m = explicit("mixed.duration", [(now - NS, now, [1, 1, 1], [0.1, 1.0]),    # ok
                                    (now - NS, now, [1, 1], [0.1, 1.0]),       # counts do not match bounds
                                    (now - NS, now, [1, 1, 1], [1.0, 0.1])],   # bounds not increasing
                 temporality=1)
    m.histogram.data_points[0].attributes.add(key="k").value.string_value = "ok"
    bad_count = m.histogram.data_points.add(time_unix_nano=now, count=7, bucket_counts=[1, 1, 1],
                                            explicit_bounds=[0.1, 1.0])
    bad_count.attributes.add(key="k").value.string_value = "bad"
    m.histogram.data_points.add(time_unix_nano=now, count=1, sum=math.nan, bucket_counts=[1, 0, 0],
                                explicit_bounds=[0.1, 1.0])
    req = request(m, "invalid")
    e = expo_metric("mixed.expo", [(now - NS, now, 25, 0, [1]), (now - NS, now, 0, 0, [2])], temporality=1)
    req.resource_metrics[0].scope_metrics[0].metrics.append(e)
    summary = metrics_pb2.Metric(name="old.summary")
    summary.summary.data_points.add(time_unix_nano=now, count=1, sum=1.0)
    req.resource_metrics[0].scope_metrics[0].metrics.append(summary)
    resp = post(stack, req)
    assert resp.partial_success.rejected_data_points == 6
    msg = resp.partial_success.error_message
    for reason in ("bucket counts do not match bounds", "bounds not increasing", "count does not match buckets",
                   "nan sum", "scale out of range", "summary not supported"):
        assert reason in msg, msg
    _, cnt, _, _ = helpers.read_hist(stack.aggregator, "mixed_duration_seconds", service_name="invalid")
    assert cnt.tolist() == [1, 1, 1]
    _, cnt, _, _ = helpers.read_hist(stack.aggregator, "mixed_expo_seconds", service_name="invalid")
    assert cnt.sum() == 2
