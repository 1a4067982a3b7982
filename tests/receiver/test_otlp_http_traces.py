"""OTLP/HTTP traces: the real OpenTelemetry SDK exporter and hand-built OTLP JSON."""
import json
import time

import httpx
import numpy as np
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from collector.model import NS
from collector.receiver.spans import METRIC


def emit(exporter, service, durations, route="/pay", error_every=0):
    provider = TracerProvider(resource=Resource.create({"service.name": service, "deployment.environment": "prod"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=10_000, max_export_batch_size=1000))
    tracer = provider.get_tracer("tests")
    end = time.time_ns() - 2 * NS
    for k, d in enumerate(durations):
        span = tracer.start_span("POST " + route, kind=SpanKind.SERVER, start_time=end - int(round(d * 1e9)),
                                 attributes={"http.request.method": "POST", "http.route": route,
                                             "http.response.status_code": 200, "other": "x"})
        if error_every and k % error_every == 0:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
    client = tracer.start_span("outgoing", kind=SpanKind.CLIENT, start_time=end - NS)
    client.end(end_time=end)
    assert provider.force_flush(10_000)
    provider.shutdown()


def test_sdk_http_exporter_counts_and_quantiles(stack, helpers):
    rng = np.random.default_rng(11)
    durations = rng.lognormal(np.log(0.05), 1.0, 3000).clip(1e-3, 100)
    emit(OTLPSpanExporter(endpoint=stack.http_url + "/v1/traces"), "checkout-http", durations)
    series = helpers.series_of(stack.aggregator, METRIC, service_name="checkout-http")
    assert {s.labels for s in series} == {(
        ("deployment_environment", "prod"), ("http_request_method", "POST"),
        ("http_response_status_code", "200"), ("http_route", "/pay"), ("service_name", "checkout-http"),
        ("span_kind", "SPAN_KIND_SERVER"), ("span_name", "POST /pay"), ("status_code", "STATUS_CODE_UNSET"))}
    idx, cnt, bounds, total = helpers.read_hist(stack.aggregator, METRIC, service_name="checkout-http")
    assert bounds is None and int(cnt.sum()) == 3000
    assert abs(total - durations.sum()) < 1e-6 * 3000
    helpers.assert_quantiles(idx, cnt, durations)


def test_sdk_http_exporter_with_errors_splits_status(stack, helpers):
    durations = np.full(100, 0.2)
    emit(OTLPSpanExporter(endpoint=stack.http_url + "/v1/traces", compression=None), "status-svc", durations,
         error_every=4)
    _, err, _, _ = helpers.read_hist(stack.aggregator, METRIC, service_name="status-svc",
                                     status_code="STATUS_CODE_ERROR")
    _, ok, _, _ = helpers.read_hist(stack.aggregator, METRIC, service_name="status-svc",
                                    status_code="STATUS_CODE_UNSET")
    assert (err.sum(), ok.sum()) == (25, 75)


def otlp_json_spans(service, spans, snake=False):
    key = (lambda camel, snake_: snake_) if snake else (lambda camel, snake_: camel)
    return {key("resourceSpans", "resource_spans"): [{
        "resource": {"attributes": [{"key": "service.name", "value": {key("stringValue", "string_value"): service}},
                                    {"key": "deployment.environment", "value": {"stringValue": "staging"}}]},
        key("scopeSpans", "scope_spans"): [{"scope": {"name": "t"}, "spans": spans, "unknownField": 1}],
    }]}


def span_json(i, start, end, kind=2, attrs=(), **extra):
    d = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"{i:016x}", "parentSpanId": "",
         "name": "GET /items/{id}", "kind": kind, "startTimeUnixNano": str(start), "endTimeUnixNano": end,
         "attributes": list(attrs)}
    d.update(extra)
    return d


def test_json_batch_with_bad_spans_keeps_the_others(stack, helpers):
    now = time.time_ns()
    old_semconv = [{"key": "http.method", "value": {"stringValue": "GET"}},
                   {"key": "http.status_code", "value": {"intValue": "404"}},
                   {"key": "http.route", "value": {"stringValue": "/items/{id}"}}]
    spans = [span_json(i, now - (i + 1) * 1_000_000, now, attrs=old_semconv) for i in range(10)]
    spans.append(span_json(10, now, now - 5, attrs=old_semconv))                                   # end < start
    spans.append(span_json(11, 0, now))                                                            # no start
    spans.append(span_json(12, now - 1000, now, attrs=[{"key": "http.route", "value": {"stringValue": "x" * 5000}}]))
    spans.append(span_json(13, now - 3600 * NS - 1000, now - 3600 * NS, attrs=old_semconv))                       # too old
    spans.append(span_json(14, now - 1000, now, kind="SPAN_KIND_INTERNAL"))                       # not counted
    spans.append(span_json(15, now - 1000, now, kind=5, status={"code": 2}))                        # consumer, error
    r = httpx.post(stack.http_url + "/v1/traces", content=json.dumps(otlp_json_spans("json-svc", spans)),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["partialSuccess"]["rejectedSpans"] == "4"
    msg = body["partialSuccess"]["errorMessage"]
    for reason in ("end before start", "missing time", "attribute too long", "too old"):
        assert reason in msg
    idx, cnt, _, _ = helpers.read_hist(stack.aggregator, METRIC, service_name="json-svc", span_kind="SPAN_KIND_SERVER")
    assert cnt.sum() == 10
    helpers.assert_quantiles(idx, cnt, [(i + 1) / 1000 for i in range(10)])
    (server,) = helpers.series_of(stack.aggregator, METRIC, service_name="json-svc", span_kind="SPAN_KIND_SERVER")
    labels = dict(server.labels)
    assert (labels["http_request_method"], labels["http_response_status_code"], labels["deployment_environment"]) \
        == ("GET", "404", "staging")
    (consumer,) = helpers.series_of(stack.aggregator, METRIC, service_name="json-svc", span_kind="SPAN_KIND_CONSUMER")
    assert dict(consumer.labels)["status_code"] == "STATUS_CODE_ERROR"


def test_json_snake_case_and_numbers(stack, helpers):
    now = time.time_ns()
    span = {"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "0000000000000001", "name": "snake",
            "kind": "SPAN_KIND_SERVER", "start_time_unix_nano": now - 3_000_000, "end_time_unix_nano": str(now)}
    r = httpx.post(stack.http_url + "/v1/traces", json=otlp_json_spans("snake-svc", [span], snake=True))
    assert r.status_code == 200 and r.json() == {}
    _, cnt, _, total = helpers.read_hist(stack.aggregator, METRIC, service_name="snake-svc")
    assert cnt.sum() == 1 and abs(total - 0.003) < 1e-9


def test_protobuf_partial_success_in_protobuf(stack):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                            ExportTraceServiceResponse)
    from google.protobuf import json_format
    now = time.time_ns()
    doc = otlp_json_spans("pb-svc", [span_json(1, now - 10, now), span_json(2, now, now - 10)])
    doc["resourceSpans"][0]["scopeSpans"][0].pop("unknownField")
    for s in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:
        s.pop("traceId"), s.pop("spanId"), s.pop("parentSpanId")
    req = json_format.ParseDict(doc, ExportTraceServiceRequest())
    r = httpx.post(stack.http_url + "/v1/traces", content=req.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    resp = ExportTraceServiceResponse.FromString(r.content)
    assert resp.partial_success.rejected_spans == 1
    assert "end before start" in resp.partial_success.error_message
