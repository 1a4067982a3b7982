"""The transport-independent half of the receivers: decoded Export*ServiceRequest
→ aggregator → Export*ServiceResponse, with self-metrics. OTLP/HTTP and
OTLP/gRPC both call it, so they cannot diverge. One instance per service: it
holds the temporality state, so both transports should share it."""
from __future__ import annotations

import base64
import hashlib
import logging
import pickle

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.aggregate.aggregator import Aggregator, RecordResult
from collector.model import Labels, make_labels
from collector.receiver import fastspans
from collector.receiver.errors import BadRequest
from collector.receiver.fastspans import DecodedTraces
from collector.receiver.limits import DEFAULT_TENANT, Limiter, Refused, count_items
from collector.receiver.logs import extract_logs
from collector.receiver.metrics import MetricExtractor
from collector.receiver.outcome import Outcome
from collector.receiver.settings import ReceiverSettings
from collector.receiver.spans import SpanExtractor
from collector.receiver.target_info import record_target_info
from opentelemetry.trace import NoOpTracer, SpanKind, Tracer

from collector.selfmetrics import SelfMetrics
from collector.receiver import remote_write
from collector.wal import SIGNAL_METRICS, SIGNAL_PROM_V1, SIGNAL_PROM_V2, SIGNAL_TRACES, Record, WriteAheadLog

REQUEST_TYPES = {"traces": ExportTraceServiceRequest, "metrics": ExportMetricsServiceRequest,
                 "logs": ExportLogsServiceRequest}


WAL_SIGNALS = {"traces": SIGNAL_TRACES, "metrics": SIGNAL_METRICS,
               remote_write.V1: SIGNAL_PROM_V1, remote_write.V2: SIGNAL_PROM_V2}
R_WAL_FULL = "wal_full"   # refusal reason: the WAL reached storage.wal_max_size
SIGNAL_NAMES = {v: k for k, v in WAL_SIGNALS.items()}
# every message a WAL record may hold: OTLP, and Prometheus remote write 1.0 / 2.0
_WAL_TYPES = {**REQUEST_TYPES, **remote_write.MESSAGES}

log = logging.getLogger(__name__)


class TenantAggregator:
    """The aggregator as one tenant writes to it: every label set gets
    ``tenant="<name>"`` (the token's tenant wins over an attribute of that
    name, so a sender cannot write as another tenant). Everything else is
    the shared aggregator's."""

    def __init__(self, aggregator: Aggregator, tenant: str):
        self._agg = aggregator
        self._tenant = tenant

    def __getattr__(self, name):
        return getattr(self._agg, name)

    def _l(self, labels: Labels) -> Labels:
        d = dict(labels)
        d["tenant"] = self._tenant
        return make_labels(d)

    def record_durations(self, metric, label_sets, *args, **kw) -> RecordResult:
        return self._agg.record_durations(metric, [self._l(ls) for ls in label_sets], *args, **kw)

    def record_samples(self, metric, kind, label_sets, *args, **kw) -> RecordResult:
        return self._agg.record_samples(metric, kind, [self._l(ls) for ls in label_sets], *args, **kw)

    def record_batch(self, metric, label_sets, *args, **kw) -> RecordResult:
        return self._agg.record_batch(metric, [self._l(ls) for ls in label_sets], *args, **kw)

    def record_hdr(self, metric, labels, *args, **kw) -> RecordResult:
        return self._agg.record_hdr(metric, self._l(labels), *args, **kw)

    def record_custom(self, metric, labels, *args, **kw) -> RecordResult:
        return self._agg.record_custom(metric, self._l(labels), *args, **kw)

    def record_exemplars(self, metric, labels, *args, **kw) -> int:
        return self._agg.record_exemplars(metric, self._l(labels), *args, **kw)



def _target_info_hook(resource, aggregator) -> None:
    """Once per resource of a trace request, on either span path: its ``target_info``
    (``aggregator`` is the tenant's view, which adds the ``tenant`` label)."""
    record_target_info(aggregator, resource.attributes)

class Ingest:
    def __init__(self, aggregator: Aggregator, settings: ReceiverSettings, metrics: SelfMetrics,
                 wal: WriteAheadLog | None = None, limiter: Limiter | None = None, tracer: Tracer | None = None,
                 wal_max_bytes: int = 0):
        self.aggregator = aggregator
        self.settings = settings
        self.metrics = metrics
        self.wal = wal
        self.wal_max_bytes = wal_max_bytes   # storage.wal_max_size; 0 = unbounded
        self.tracer = tracer or NoOpTracer()  # Tocsin's own traces (collector/selftrace.py)
        self.limiter = limiter or Limiter(settings.limits, metrics)
        # tenant label (None: none) -> extractors; per tenant because the
        # metric extractor's temporality state is keyed by labels without it
        self._extractors: dict[str | None, tuple[SpanExtractor, MetricExtractor]] = {
            None: (SpanExtractor(aggregator, settings), MetricExtractor(aggregator, settings))}
        self._extractors[None][0].resource_hook = self._resource_hook
        self._remote: dict[str | None, remote_write.RemoteWriteExtractor] = {}
        # The compiled span path (fastspans) for protobuf trace bodies, or None: the reference path.
        self.span_plan = None
        use, why = fastspans.choose(settings.compiled)
        if use:
            ex = self._extractors[None][0]
            self.span_plan = fastspans.make_plan(ex._wanted, ex._dims, settings.max_attribute_length)
            log.info("span ingest: compiled path (collector.receiver._spanwire%s)", f"; {why}" if why else "")
        else:
            log.info("span ingest: pure-Python path: %s", why)

    def decode_compiled(self, signal: str, data: bytes) -> DecodedTraces | None:
        """A protobuf body decoded by the compiled path, or None where that path
        does not apply (not traces, or turned off): then decode it as usual."""
        if signal != "traces" or self.span_plan is None:
            return None
        try:
            return DecodedTraces(self.span_plan.parse(data), data)
        except fastspans.DecodeError as e:
            raise BadRequest(f"cannot decode protobuf: {e}") from None

    def _for(self, tenant: str | None) -> tuple[SpanExtractor, MetricExtractor]:
        ex = self._extractors.get(tenant)
        if ex is None:
            view = TenantAggregator(self.aggregator, tenant)
            ex = self._extractors[tenant] = (SpanExtractor(view, self.settings),
                                             MetricExtractor(view, self.settings, clock=self.aggregator.clock))
            ex[0].resource_hook = self._resource_hook
        return ex

    _resource_hook = staticmethod(_target_info_hook)

    def set_resource_hook(self, hook) -> None:
        """Call ``hook(resource, aggregator)`` once per ``resource_spans`` of every
        trace request, on either span path, with its ``Resource`` message and the
        aggregator as the request's tenant writes to it (e.g. for ``target_info``)."""
        self._resource_hook = hook
        for spans, _ in self._extractors.values():
            spans.resource_hook = hook

    def handle(self, signal: str, request, tenant: str | None = None):
        """The response message for one decoded request of ``signal``;
        ``tenant`` (None: no label) becomes the label ``tenant`` of its series."""
        if signal == "traces":
            outcome = self._for(tenant)[0].extract(request)   # target_info: the resource hook
        elif signal == "metrics":
            outcome = self._for(tenant)[1].extract(request)
            for rm in request.resource_metrics:
                record_target_info(self.aggregator, rm.resource.attributes, tenant)
        elif signal in remote_write.MESSAGES:
            outcome = self._remote_for(tenant).extract(signal, request)
        else:
            outcome = extract_logs(request, self.settings)
        self._count(outcome)
        return outcome.response

    def _remote_for(self, tenant: str | None) -> remote_write.RemoteWriteExtractor:
        rx = self._remote.get(tenant)
        if rx is None:
            mx = self._for(tenant)[1]
            rx = self._remote[tenant] = remote_write.RemoteWriteExtractor(mx.aggregator, self.settings,
                                                                          mx.expo_deltas)
        return rx

    def take_temporality(self) -> dict[str, dict]:
        """Cumulative→delta baselines and delta→cumulative totals changed since the
        last call, as store documents. The flusher writes them in the same
        transaction as the data and the WAL marker, so after a restart (and WAL
        replay) every series continues from exactly where it was."""
        docs = {}
        for tenant, (_, mx) in self._extractors.items():
            for (part, key), value in mx.take_changed_state().items():
                ident = pickle.dumps((tenant, part, key))
                docs[hashlib.sha1(ident).hexdigest()] = {
                    "state": base64.b64encode(pickle.dumps((tenant, part, key, value))).decode()}
        return docs

    def restore_temporality(self, docs: dict[str, dict]) -> None:
        """Load what ``take_temporality`` saved (the store is Tocsin's own file)."""
        by_tenant: dict = {}
        for doc in docs.values():
            tenant, part, key, value = pickle.loads(base64.b64decode(doc["state"]))
            by_tenant.setdefault(tenant, {})[(part, key)] = value
        for tenant, state in by_tenant.items():
            self._for(tenant)[1].restore_state(state)

    def label_of(self, tenant: str | None) -> str | None:
        """The tenant label for a request authenticated as ``tenant``: only when
        ingest tokens are configured (``settings.tenant_label``)."""
        return (tenant or DEFAULT_TENANT) if self.settings.tenant_label else None

    async def handle_durable(self, signal: str, request, raw: bytes | None = None, tenant: str | None = None):
        """``handle``, acknowledged only once the request is in the write-ahead log.

        The tenant's rate limit is charged first: a request over it is refused
        whole (``RateLimited``) before anything is logged or aggregated.
        The WAL append and the aggregation happen with no ``await`` between them,
        so the flusher (which rotates the WAL and takes the aggregator's data in
        one step on the same loop) sees either both or neither."""
        prom = signal in remote_write.MESSAGES
        if isinstance(request, DecodedTraces):
            items = request.received
        else:
            items = remote_write.count_items(request) if prom else count_items(signal, request)
        with self.tracer.start_as_current_span("tocsin.otlp.export", kind=SpanKind.SERVER, attributes={
                "tocsin.signal": signal, "tocsin.items": items, "tocsin.tenant": tenant or DEFAULT_TENANT}):
            self.limiter.charge(tenant or DEFAULT_TENANT, "metrics" if prom else signal, items)
            label = self.label_of(tenant)
            if self.wal is None or signal not in WAL_SIGNALS:
                return self.handle(signal, request, label)
            self._check_wal_room(signal)
            payload = raw if raw is not None else request.SerializeToString()
            synced = self.wal.append(WAL_SIGNALS[signal], payload, self.aggregator.clock(), tenant=label)
            response = self.handle(signal, request, label)
            await synced  # the span covers the fsync the answer waits for
            return response

    def _check_wal_room(self, signal: str) -> None:
        """The WAL holds what was acknowledged but is not in the store yet; it only
        grows while flushes fail (the store is down). Past its bound, refuse
        retryably rather than fill the disk."""
        size = self.wal.size_bytes
        if self.wal_max_bytes and size >= self.wal_max_bytes:
            self.metrics.requests_refused.labels(signal, R_WAL_FULL).inc()
            raise Refused(f"the write-ahead log holds {size >> 20} MiB, its bound (storage.wal_max_size), because "
                          "the store is not accepting writes; retry later", R_WAL_FULL,
                          self.limiter.settings.retry_after_seconds)

    def replay(self, record: Record) -> None:
        """Re-apply one WAL record, judging lateness by when it was received,
        with the tenant label it was received with."""
        signal = SIGNAL_NAMES[record.signal]
        try:
            request = self.decode_compiled(signal, record.payload)
        except BadRequest:   # it decoded when it was logged; let the reference say why it does not now
            request = None
        if request is None:
            request = _WAL_TYPES[signal].FromString(record.payload)
        clock = self.aggregator.clock
        self.aggregator.clock = lambda: record.received_ns
        try:
            self.handle(signal, request, record.tenant)
        finally:
            self.aggregator.clock = clock

    def _count(self, o: Outcome) -> None:
        m = self.metrics
        m.items_received.labels(o.signal).inc(o.received)
        m.items_accepted.labels(o.signal).inc(o.result.accepted)
        for reason, n in o.result.reasons.items():
            m.items_rejected.labels(o.signal, reason).inc(n)
        for reason, n in o.result.ignored_reasons.items():
            m.items_ignored.labels(o.signal, reason).inc(n)
        if o.result.clamped:
            m.values_clamped.inc(o.result.clamped)
        if o.signal != "logs":
            m.series_active.set(self.aggregator.series_count())
