"""The transport-independent half of the receivers: decoded Export*ServiceRequest
→ aggregator → Export*ServiceResponse, with self-metrics. OTLP/HTTP and
OTLP/gRPC both call it, so they cannot diverge. One instance per service: it
holds the temporality state, so both transports should share it."""
from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.aggregate.aggregator import Aggregator
from collector.receiver.logs import extract_logs
from collector.receiver.metrics import MetricExtractor
from collector.receiver.outcome import Outcome
from collector.receiver.settings import ReceiverSettings
from collector.receiver.spans import SpanExtractor
from collector.selfmetrics import SelfMetrics
from collector.wal import SIGNAL_METRICS, SIGNAL_TRACES, Record, WriteAheadLog

REQUEST_TYPES = {"traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest,
                 "logs": ExportLogsServiceRequest}


WAL_SIGNALS = {"traces": SIGNAL_TRACES, "metrics": SIGNAL_METRICS}
SIGNAL_NAMES = {v: k for k, v in WAL_SIGNALS.items()}


class Ingest:
    def __init__(self, aggregator: Aggregator, settings: ReceiverSettings, metrics: SelfMetrics,
                 wal: WriteAheadLog | None = None):
        self.aggregator = aggregator
        self.settings = settings
        self.metrics = metrics
        self.wal = wal
        self._spans = SpanExtractor(aggregator, settings)
        self._metrics = MetricExtractor(aggregator, settings)

    def handle(self, signal: str, request):
        """The response message for one decoded request of ``signal``."""
        if signal == "traces":
            outcome = self._spans.extract(request)
        elif signal == "metrics":
            outcome = self._metrics.extract(request)
        else:
            outcome = extract_logs(request, self.settings)
        self._count(outcome)
        return outcome.response

    async def handle_durable(self, signal: str, request, raw: bytes | None = None):
        """``handle``, acknowledged only once the request is in the write-ahead log.

        The WAL append and the aggregation happen with no ``await`` between them,
        so the flusher (which rotates the WAL and takes the aggregator's data in
        one step on the same loop) sees either both or neither."""
        if self.wal is None or signal not in WAL_SIGNALS:
            return self.handle(signal, request)
        payload = raw if raw is not None else request.SerializeToString()
        synced = self.wal.append(WAL_SIGNALS[signal], payload, self.aggregator.clock())
        response = self.handle(signal, request)
        await synced
        return response

    def replay(self, record: Record) -> None:
        """Re-apply one WAL record, judging lateness by when it was received."""
        signal = SIGNAL_NAMES[record.signal]
        request = REQUEST_TYPES[signal].FromString(record.payload)
        clock = self.aggregator.clock
        self.aggregator.clock = lambda: record.received_ns
        try:
            self.handle(signal, request)
        finally:
            self.aggregator.clock = clock

    def _count(self, o: Outcome) -> None:
        m = self.metrics
        m.items_received.labels(o.signal).inc(o.received)
        m.items_accepted.labels(o.signal).inc(o.result.accepted)
        for reason, n in o.result.reasons.items():
            m.items_rejected.labels(o.signal, reason).inc(n)
        if o.result.clamped:
            m.values_clamped.inc(o.result.clamped)
        if o.signal != "logs":
            m.series_active.set(self.aggregator.series_count())
