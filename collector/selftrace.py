"""Tocsin's own traces, through the OpenTelemetry SDK: off by default; when an
OTLP endpoint is configured, each OTLP request, flush, store maintenance and
query is a span. The service owns its TracerProvider (no global one), and an
endpoint that is Tocsin's own receiver is refused: it would trace its own
ingestion of its own traces, forever."""
from __future__ import annotations

from urllib.parse import urlparse

from opentelemetry.trace import NoOpTracer, Tracer


def build_tracer(cfg, version: str) -> tuple[Tracer, object | None]:
    """The tracer to use, and the provider to shut down at exit (None when off)."""
    if not cfg.traces_endpoint:
        return NoOpTracer(), None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    if cfg.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=cfg.traces_endpoint, insecure=cfg.traces_endpoint.startswith("http:"))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        exporter = OTLPSpanExporter(endpoint=cfg.traces_endpoint.rstrip("/") + "/v1/traces")
    provider = TracerProvider(resource=Resource.create({"service.name": cfg.service_name,
                                                        "service.version": version}),
                              sampler=TraceIdRatioBased(cfg.sample_ratio))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider.get_tracer("tocsin", version), provider


def loops_back(endpoint: str, own: dict[str, str]) -> bool:
    """Whether ``endpoint`` is one of this process's own OTLP listeners."""
    if not endpoint:
        return False
    url = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = {"localhost": "127.0.0.1", "::1": "[::1]"}.get(url.hostname or "", url.hostname or "")
    for key in ("otlp_grpc", "otlp_http"):
        own_host, _, own_port = own.get(key, "").rpartition(":")
        if url.port is not None and str(url.port) == own_port and (
                host == own_host or own_host in ("0.0.0.0", "[::]")):
            return True
    return False
