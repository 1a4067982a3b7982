"""Send SERVER spans with known durations through the real OpenTelemetry SDK."""
from __future__ import annotations

import time

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode


def exporter(kind: str, endpoint: str, headers: dict | None = None):
    if kind == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=endpoint, insecure=True, headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers)


def send_spans(exp, service: str, durations_s, route: str = "/checkout", status_code: int = 200,
               end_ns: int | None = None, error: bool = False) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exp, max_queue_size=100_000, max_export_batch_size=512,
                                                  schedule_delay_millis=50))
    tracer = provider.get_tracer("tocsin-tests")
    end = end_ns or time.time_ns()
    for d in durations_s:
        start = end - int(round(d * 1e9))
        span = tracer.start_span(f"POST {route}", kind=SpanKind.SERVER, start_time=start,
                                 attributes={"http.request.method": "POST", "http.route": route,
                                             "http.response.status_code": status_code})
        if error:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
    provider.force_flush()
    provider.shutdown()
