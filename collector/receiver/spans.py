"""Spans → the latency histogram ``traces_span_metrics_duration_seconds``.

The hot path of the service (see docs/performance-notes.md): one Python loop
over the spans that reads only the attributes it needs and stops once it has
them, then a single ``Aggregator.record_durations`` call for the whole request.

That loop is the reference. Protobuf bodies normally take the compiled path
(``fastspans``): the same keys, counts and arrays computed in C from the wire
format, handed to the same ``record_durations``.
"""
from __future__ import annotations

import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTracePartialSuccess,
                                                                        ExportTraceServiceResponse)

from collector.aggregate import hdr
from collector.aggregate.aggregator import Aggregator, RecordResult
from collector.aggregate.exemplars import id_row, ids_array
from collector.model import make_labels
from collector.receiver.errors import TooLarge
from collector.receiver.fastspans import DecodedTraces
from collector.receiver.outcome import Outcome, error_message
from collector.receiver.settings import ReceiverSettings
from collector.receiver.values import any_to_str

# The compiled path's bucketing (spanwire.c: sw_reduce) is written for this HDR layout.
BUCKETS_IN_C = hdr.SUB_HALF_MAG == 7 and hdr.UNIT_MAG == 0

METRIC = "traces_span_metrics_duration_seconds"
HELP = "Duration of SERVER and CONSUMER spans."

SPAN_KIND_SERVER, SPAN_KIND_CONSUMER = 2, 5
_KIND_NAMES = {SPAN_KIND_SERVER: "SPAN_KIND_SERVER", SPAN_KIND_CONSUMER: "SPAN_KIND_CONSUMER"}
_STATUS_NAMES = ("STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR")

REASON_NO_TIME = "missing_time"
REASON_END_BEFORE_START = "end_before_start"
REASON_TOO_LONG = "attribute_too_long"
REASON_IN_FUTURE = "in_future"
# Not an error: span metrics count SERVER and CONSUMER spans only (as the README says),
# but every span received is accounted for: received = accepted + rejected + ignored.
IGNORED_SPAN_KIND = "span_kind"
MAX_NS = 2**63 - 1

# (attribute key, slot, primary?) — an old semantic-conventions key fills a slot
# only when the current key is absent; a slot filled either way counts as found,
# so the scan stops once every slot has a value.
_HTTP_KEYS = (("http.request.method", 0, True), ("http.method", 0, False), ("http.route", 1, True),
              ("http.response.status_code", 2, True), ("http.status_code", 2, False))
_FIXED_NAMES = ("service_name", "span_name", "span_kind", "status_code",
                "http_request_method", "http_route", "http_response_status_code")


class SpanExtractor:
    # Called once per resource_spans with its ``Resource`` message and the
    # aggregator (the tenant's view), on both paths; None: nothing is called.
    resource_hook = None

    def __init__(self, aggregator: Aggregator, settings: ReceiverSettings):
        self.aggregator = aggregator
        self.settings = settings
        dims = settings.span_dimensions
        self._dims = dims
        self._names = _FIXED_NAMES + settings.dimension_labels()
        # key -> (slot, primary); extra dimensions take slots 3.. and always win.
        self._wanted = {k: (slot, primary) for k, slot, primary in _HTTP_KEYS}
        for i, d in enumerate(dims):
            self._wanted[d] = (3 + i, True)
        self._n_slots = 3 + len(dims)
        self._known = None          # the compiled plan's key list the ids below index
        self._labels_by_id: list = []

    def extract(self, request) -> Outcome:
        """A decoded request (protobuf message, or ``DecodedTraces`` from the compiled path)."""
        if isinstance(request, DecodedTraces):
            return self._extract_compiled(request)
        rspans = request.resource_spans
        received = sum(len(ss.spans) for rs in rspans for ss in rs.scope_spans)
        if received > self.settings.max_items_per_request:
            raise TooLarge(f"request has {received} spans, limit {self.settings.max_items_per_request}")
        if self.resource_hook is not None:
            for rs in rspans:
                self.resource_hook(rs.resource, self.aggregator)
        result = RecordResult()
        keys: dict[tuple, int] = {}
        which: list[int] = []
        ends: list[int] = []
        durs: list[int] = []
        ids: list[bytes] | None = [] if self.aggregator.settings.exemplars else None   # exemplars' trace/span ids
        wanted = self._wanted
        n_slots = self._n_slots
        n_dims = len(self._dims)
        max_len = self.settings.max_attribute_length
        bad_time = bad_order = too_long = future = other_kind = 0
        for rs in rspans:
            service, res_dims = self._resource(rs.resource)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    kind = span.kind
                    if kind != SPAN_KIND_SERVER and kind != SPAN_KIND_CONSUMER:
                        other_kind += 1
                        continue
                    start = span.start_time_unix_nano
                    end = span.end_time_unix_nano
                    if not start or not end:
                        bad_time += 1
                        continue
                    if end < start:
                        bad_order += 1
                        continue
                    if end > MAX_NS:   # past 2262: would overflow int64 (answered as in_future)
                        future += 1
                        continue
                    vals = [None] * n_slots
                    missing = n_slots
                    name = span.name
                    long_ = len(name) > max_len
                    for kv in span.attributes:
                        hit = wanted.get(kv.key)
                        if hit is None:
                            continue
                        slot = hit[0]
                        if vals[slot] is None:
                            missing -= 1
                        elif not hit[1]:
                            continue  # an old-convention key never replaces the current one
                        v = kv.value
                        s = v.string_value or any_to_str(v)
                        if len(s) > max_len:
                            long_ = True
                        vals[slot] = s
                        if not missing:
                            break
                    if long_:
                        too_long += 1
                        continue
                    if n_dims:
                        for i in range(n_dims):
                            if vals[3 + i] is None:
                                vals[3 + i] = res_dims[i]
                    key = (service, name, kind, span.status.code, *vals)
                    k = keys.get(key)
                    if k is None:
                        k = keys[key] = len(keys)
                    which.append(k)
                    ends.append(end)
                    durs.append(end - start)
                    if ids is not None:
                        ids.append(id_row(span.trace_id, span.span_id))
        result.reject(REASON_NO_TIME, bad_time)
        result.reject(REASON_END_BEFORE_START, bad_order)
        result.reject(REASON_TOO_LONG, too_long)
        result.reject(REASON_IN_FUTURE, future)
        result.ignore(IGNORED_SPAN_KIND, other_kind)
        if which:
            label_sets = [self._labels(key) for key in keys]
            rec = self.aggregator.record_durations(
                METRIC, label_sets, np.array(which, np.int64), np.array(ends, np.int64),
                np.array(durs, np.float64) * 1e-9, unit="s", help=HELP,
                ids=None if ids is None else ids_array(ids))
            result.merge(rec)
        return self._outcome(result, received)

    def _extract_compiled(self, request: DecodedTraces) -> Outcome:
        """The same as the loop above, from the compiled path's batch: its keys
        equal the loop's keys, its arrays the loop's arrays."""
        b = request.batch
        if b.fallback:   # an array/kvlist label value: its JSON text is the reference's to write
            return self.extract(request.message())
        received = b.received
        if received > self.settings.max_items_per_request:
            raise TooLarge(f"request has {received} spans, limit {self.settings.max_items_per_request}")
        if self.resource_hook is not None:
            from opentelemetry.proto.resource.v1.resource_pb2 import Resource
            for raw in b.resources():
                self.resource_hook(Resource.FromString(raw), self.aggregator)
        result = RecordResult()
        result.reject(REASON_NO_TIME, b.bad_time)
        result.reject(REASON_END_BEFORE_START, b.bad_order)
        result.reject(REASON_TOO_LONG, b.too_long)
        result.reject(REASON_IN_FUTURE, b.future)
        # what the walker skipped for its kind: every span received is accounted for
        result.ignore(IGNORED_SPAN_KIND, received - b.n - b.bad_time - b.bad_order - b.too_long - b.future)
        if b.n:
            # keys have plan-wide ids: labels are built once per series key, not per request
            known = b.known
            if self._known is not known:   # the plan started its table again
                self._known, self._labels_by_id = known, []
            by_id = self._labels_by_id
            ids = np.frombuffer(b.key_ids, np.int64).tolist()
            top = max(ids)
            while len(by_id) <= top:
                by_id.append(self._labels(known[len(by_id)]))
            label_sets = [by_id[i] for i in ids]
            if BUCKETS_IN_C:   # HDR buckets, slots and per-series stats computed in C too
                rec = self.aggregator.record_batch(METRIC, label_sets, b, unit="s", help=HELP)
            else:
                rec = self.aggregator.record_durations(
                    METRIC, label_sets, np.frombuffer(b.which, np.int64), np.frombuffer(b.ends, np.int64),
                    np.frombuffer(b.durs, np.float64), unit="s", help=HELP)
            result.merge(rec)
        return self._outcome(result, received)

    @staticmethod
    def _outcome(result: RecordResult, received: int) -> Outcome:
        response = ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.CopyFrom(ExportTracePartialSuccess(
                rejected_spans=result.rejected, error_message=error_message(result, "spans")))
        return Outcome(response, "traces", received, result)

    def _resource(self, resource) -> tuple[str, list]:
        """service.name and the extra dimensions' resource values, read once per resource."""
        service = ""
        res_dims: list = [None] * len(self._dims)
        pos = {d: i for i, d in enumerate(self._dims)}
        max_len = self.settings.max_attribute_length
        for kv in resource.attributes:
            if kv.key == "service.name":
                service = any_to_str(kv.value)[:max_len]
            elif kv.key in pos:
                res_dims[pos[kv.key]] = any_to_str(kv.value)[:max_len]
        return service or "unknown_service", res_dims

    def _labels(self, key: tuple):
        service, name, kind, status, *vals = key
        status_name = _STATUS_NAMES[status] if 0 <= status < 3 else "STATUS_CODE_UNSET"
        d = dict(zip(self._names, (service, name, _KIND_NAMES[kind], status_name, *vals)))
        return make_labels({k: v for k, v in d.items() if v is not None})
