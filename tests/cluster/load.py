"""Load through HAProxy with the OpenTelemetry SDK's own OTLP exporters (HTTP and
gRPC), one batch at a time per sender, counting exactly: the spans of every
batch the exporter reported exported (SUCCESS: a replica acknowledged them) and
of every batch it gave up on (FAILURE: not acknowledged; may still be stored).

The exporters retry as OTLP says (502/503/UNAVAILABLE, with backoff). A batch in
flight when a replica dies may have been stored by it and then sent again to
another replica, so what is stored is at least ``acked`` and at most ``acked +
unsure + in_flight_bound`` spans: one batch per sender."""
from __future__ import annotations

import threading
import time

import numpy as np
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind


def http_exporter(url: str):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=f"{url}/v1/traces", timeout=15)


def sdk_exporter(protocol: str, haproxy):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=f"http://{haproxy.grpc_target}", insecure=True, timeout=15)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=f"{haproxy.http_url}/v1/traces", timeout=15)


class Sender:
    """One thread sending ``batch`` SERVER spans of ``service`` every ``every`` seconds;
    ``latency()`` gives the duration of each span (seconds) at send time."""

    def __init__(self, protocol: str, haproxy, service: str, batch: int = 20, every: float = 0.1,
                 latency=lambda: 0.05, seed: int = 1):
        self.protocol, self.service, self.batch, self.every, self.latency = protocol, service, batch, every, latency
        self.exporter = sdk_exporter(protocol, haproxy)
        self.memory = InMemorySpanExporter()
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = provider.get_tracer("tocsin-cluster-tests")
        self.rng = np.random.default_rng(seed)
        self.acked = 0
        self.unsure = 0
        self.batches = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"load-{protocol}-{service}", daemon=True)

    @property
    def in_flight_bound(self) -> int:
        return self.batch

    def _spans(self):
        self.memory.clear()
        end = time.time_ns()
        base = self.latency()
        for d in self.rng.lognormal(np.log(base), 0.1, self.batch):
            span = self.tracer.start_span("POST /checkout", kind=SpanKind.SERVER, start_time=end - int(d * 1e9),
                                          attributes={"http.request.method": "POST", "http.route": "/checkout",
                                                      "http.response.status_code": 200})
            span.end(end_time=end)
        return self.memory.get_finished_spans()

    def _run(self) -> None:
        while not self._stop.is_set():
            spans = self._spans()
            result = self.exporter.export(spans)
            self.batches += 1
            if result == SpanExportResult.SUCCESS:
                self.acked += len(spans)
            else:
                self.unsure += len(spans)
            self._stop.wait(self.every)

    def start(self) -> "Sender":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.exporter.shutdown()


def start_load(haproxy, service: str, latency, batch: int = 20, every: float = 0.1) -> list[Sender]:
    """One sender per protocol (OTLP/HTTP and OTLP/gRPC), both through HAProxy."""
    return [Sender(p, haproxy, service, batch, every, latency, seed=i).start()
            for i, p in enumerate(("http", "grpc"))]


def stop_load(senders: list[Sender]) -> tuple[int, int, int]:
    """(acked, unsure, in-flight bound) of all senders, once they have stopped."""
    for s in senders:
        s.stop()
    return (sum(s.acked for s in senders), sum(s.unsure for s in senders), sum(s.in_flight_bound for s in senders))
