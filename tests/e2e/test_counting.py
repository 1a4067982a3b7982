"""/metrics accounts for every item: received = accepted + rejected + ignored, per
signal. CLIENT, INTERNAL and PRODUCER spans are not counted into span metrics by
design, and show up as ignored{reason="span_kind"} rather than vanishing."""
import time

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families


def _request(now: int) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="shop")))
    spans = rs.scope_spans.add().spans
    kinds = [Span.SPAN_KIND_SERVER] * 5 + [Span.SPAN_KIND_CONSUMER] * 2 + [Span.SPAN_KIND_CLIENT] * 4 + \
            [Span.SPAN_KIND_INTERNAL] * 3 + [Span.SPAN_KIND_PRODUCER] * 2 + [Span.SPAN_KIND_UNSPECIFIED]
    for i, kind in enumerate(kinds):
        s = spans.add(name=f"op{i}", kind=kind, start_time_unix_nano=now - 10_000_000, end_time_unix_nano=now)
        s.trace_id, s.span_id = bytes(16 * [1]), bytes([i + 1] * 8)
    bad = spans.add(name="backwards", kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=now,
                    end_time_unix_nano=now - 1)
    bad.trace_id, bad.span_id = bytes(16 * [1]), bytes(8 * [99])
    return req


def _samples(text: str) -> dict:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name.endswith("_total"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_every_span_received_is_accepted_rejected_or_ignored(server_factory):
    srv = server_factory({"rules": {"files": []}})
    r = httpx.post(srv.http_url + "/v1/traces", content=_request(time.time_ns()).SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200, r.text
    m = _samples(httpx.get(srv.api_url + "/metrics", timeout=10).text)
    get = lambda name, **labels: m.get((name, tuple(sorted(labels.items()))), 0.0)  # noqa: E731
    received = get("tocsin_items_received_total", signal="traces")
    accepted = get("tocsin_items_accepted_total", signal="traces")
    rejected = sum(v for (n, lab), v in m.items() if n == "tocsin_items_rejected_total" and ("signal", "traces") in lab)
    ignored = get("tocsin_items_ignored_total", signal="traces", reason="span_kind")
    assert (received, accepted, rejected, ignored) == (18, 7, 1, 10)
    assert received == accepted + rejected + ignored
