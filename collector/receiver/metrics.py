"""OTLP metrics → aggregator series, named and labelled in Prometheus form.

Gauges and non-monotonic sums become gauge samples, monotonic sums counter
samples (cumulative; delta sums are summed up), explicit-bucket histograms keep
the sender's bounds (``record_custom``), exponential histograms are mapped to
the HDR layout (``record_hdr``). Cumulative histograms become deltas first
(collector.aggregate.temporality). Time units are converted to seconds.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsPartialSuccess,
                                                                            ExportMetricsServiceResponse)

from collector.aggregate import expo
from collector.aggregate.aggregator import Aggregator, RecordResult
from collector.aggregate.exemplars import id_row, ids_array
from collector.aggregate.temporality import CumulativeToDelta, DeltaToCumulative, HistPoint, subtract_explicit
from collector.model import KIND_COUNTER, KIND_GAUGE, NS, Labels, make_labels
from collector.receiver.errors import TooLarge
from collector.receiver.naming import label_name, metric_name
from collector.receiver.outcome import Outcome, error_message
from collector.receiver.settings import ReceiverSettings
from collector.receiver.values import any_to_str

CUMULATIVE = 2  # AggregationTemporality
DELTA = 1
NO_RECORDED_VALUE = 1  # DataPointFlags

R_TIME = "missing_time"
R_TOO_LONG = "attribute_too_long"
R_BUCKETS = "bucket_counts_do_not_match_bounds"
R_BOUNDS = "bounds_not_increasing"
R_COUNT = "count_does_not_match_buckets"
R_NAN_SUM = "nan_sum"
R_SCALE = "scale_out_of_range"
R_SUMMARY = "summary_not_supported"
R_NO_NAME = "missing_metric_name"
R_FUTURE = "in_future"              # a timestamp past 2262 (does not fit int64 nanoseconds)
R_NOT_FINITE = "non_finite_value"   # NaN/±inf in a counter: it would poison rate() and running totals
R_INF_SUM = "infinite_sum"
R_COUNT_RANGE = "count_too_large"   # counts beyond 2^62 (would overflow int64 sums)
MAX_NS = 2**63 - 1
MAX_COUNT = 2**62


class MetricExtractor:
    def __init__(self, aggregator: Aggregator, settings: ReceiverSettings, clock: Callable[[], int] | None = None):
        self.aggregator = aggregator
        self.settings = settings
        self.clock = clock or aggregator.clock
        lateness = aggregator.settings.lateness_seconds * NS
        self._hist = CumulativeToDelta(subtract_explicit, lateness)
        self._expo = CumulativeToDelta(expo.subtract, lateness)
        self._sums = DeltaToCumulative()
        self._state = {"hist": self._hist, "expo": self._expo, "sums": self._sums}

    @property
    def expo_deltas(self) -> CumulativeToDelta:
        """Cumulative → delta state of exponential histograms. Prometheus native
        histograms (remote write) share it, so it is saved with the same documents."""
        return self._expo

    def take_changed_state(self) -> dict:
        """Temporality state changed since the last call, {(part, series key): state}."""
        return {(part, k): v for part, conv in self._state.items() for k, v in conv.take_changed().items()}

    def restore_state(self, state: dict) -> None:
        for part, conv in self._state.items():
            conv.restore({k: v for (p, k), v in state.items() if p == part})

    def extract(self, request) -> Outcome:
        received = 0
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    received += len(getattr(m, m.WhichOneof("data") or "gauge").data_points)
        if received > self.settings.max_items_per_request:
            raise TooLarge(f"request has {received} data points, limit {self.settings.max_items_per_request}")
        result = RecordResult()
        now = self.clock()
        for rm in request.resource_metrics:
            res = self._resource(rm.resource)
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind is None:
                        continue
                    if not m.name:
                        result.reject(R_NO_NAME, len(getattr(m, kind).data_points))
                    elif kind == "gauge":
                        self._numbers(m, m.gauge.data_points, False, True, False, res, result)
                    elif kind == "sum":
                        s = m.sum
                        self._numbers(m, s.data_points, s.is_monotonic, not s.is_monotonic,
                                      s.aggregation_temporality == DELTA, res, result)
                    elif kind == "histogram":
                        self._histograms(m, res, result, now)
                    elif kind == "exponential_histogram":
                        self._expo_histograms(m, res, result, now)
                    else:
                        result.reject(R_SUMMARY, len(m.summary.data_points))
        response = ExportMetricsServiceResponse()
        if result.rejected:
            response.partial_success.CopyFrom(ExportMetricsPartialSuccess(
                rejected_data_points=result.rejected, error_message=error_message(result, "data points")))
        return Outcome(response, "metrics", received, result)

    # -- labels ---------------------------------------------------------------
    def _resource(self, resource) -> dict[str, str]:
        """service_name, and job / instance as the OTLP→Prometheus spec derives them."""
        attrs = {kv.key: any_to_str(kv.value) for kv in resource.attributes
                 if kv.key in ("service.name", "service.namespace", "service.instance.id")}
        out = {}
        name = attrs.get("service.name", "")
        if name:
            out["service_name"] = name
            ns = attrs.get("service.namespace", "")
            out["job"] = f"{ns}/{name}" if ns else name
        if attrs.get("service.instance.id"):
            out["instance"] = attrs["service.instance.id"]
        return out

    def _labels(self, attributes, res: dict[str, str]) -> Labels | None:
        """Data point attributes plus the resource labels (which win on a clash);
        None when a value is too long."""
        max_len = self.settings.max_attribute_length
        d: dict[str, str] = {}
        for kv in attributes:
            v = any_to_str(kv.value)
            if len(v) > max_len:
                return None
            name = label_name(kv.key)
            d[name] = f"{d[name]};{v}" if name in d else v
        d.update(res)
        return make_labels(d)

    def _exemplars(self, name: str, labels: Labels, dp, factor: float, result: RecordResult) -> None:
        """A point's exemplars that carry a trace id, kept with its series in the point's
        slot (their filtered attributes are not kept). An empty span id is allowed."""
        rows, values, at = [], [], []
        for ex in dp.exemplars:
            span = ex.span_id or bytes(8)
            row = id_row(ex.trace_id, span)
            if not any(row):
                continue
            v = ex.as_int if ex.WhichOneof("value") == "as_int" else ex.as_double
            rows.append(row)
            values.append(float(v) * factor)
            at.append(ex.time_unix_nano if 0 < ex.time_unix_nano <= MAX_NS else dp.time_unix_nano)
        if rows:
            result.exemplars += self.aggregator.record_exemplars(name, labels, dp.time_unix_nano, np.array(values),
                                                                 np.array(at, np.int64), ids_array(rows))

    # -- numbers --------------------------------------------------------------
    def _numbers(self, m, points, counter: bool, gauge: bool, delta: bool, res, result: RecordResult) -> None:
        name, factor, unit = metric_name(m.name, m.unit, counter, gauge)
        label_index: dict[Labels, int] = {}
        which, ts, values = [], [], []
        with_ex: list = []
        for dp in points:
            if dp.flags & NO_RECORDED_VALUE:
                result.accepted += 1
                continue
            if not dp.time_unix_nano or dp.time_unix_nano > MAX_NS:
                result.reject(R_FUTURE if dp.time_unix_nano else R_TIME)
                continue
            labels = self._labels(dp.attributes, res)
            if labels is None:
                result.reject(R_TOO_LONG)
                continue
            v = (dp.as_int if dp.WhichOneof("value") == "as_int" else dp.as_double) * factor
            if counter and not math.isfinite(v):
                result.reject(R_NOT_FINITE)
                continue
            if delta:
                v = self._sums.add((name, labels), v)
            which.append(label_index.setdefault(labels, len(label_index)))
            ts.append(dp.time_unix_nano)
            values.append(v)
            if dp.exemplars:
                with_ex.append((labels, dp))
        if which:
            result.merge(self.aggregator.record_samples(
                name, KIND_COUNTER if counter else KIND_GAUGE, list(label_index), np.array(which, np.int64),
                np.array(ts, np.int64), np.array(values, np.float64), unit=unit, help=m.description))
            for labels, dp in with_ex:   # once the series exist
                self._exemplars(name, labels, dp, factor, result)

    # -- histograms -----------------------------------------------------------
    def _usable(self, dp, result: RecordResult) -> bool:
        """Whether a histogram point should be recorded; a point flagged as having no
        recorded value counts as accepted, an invalid one is rejected with its reason."""
        if dp.flags & NO_RECORDED_VALUE:
            result.accepted += 1
            return False
        if not dp.time_unix_nano or dp.time_unix_nano > MAX_NS:
            result.reject(R_FUTURE if dp.time_unix_nano else R_TIME)
            return False
        if dp.HasField("sum") and math.isnan(dp.sum) and dp.count > 0:
            result.reject(R_NAN_SUM)
            return False
        if dp.HasField("sum") and math.isinf(dp.sum):
            result.reject(R_INF_SUM)
            return False
        if dp.count >= MAX_COUNT:
            result.reject(R_COUNT_RANGE)
            return False
        return True

    def _histograms(self, m, res, result: RecordResult, now: int) -> None:
        h = m.histogram
        name, factor, unit = metric_name(m.name, m.unit, False, False)
        cumulative = h.aggregation_temporality != DELTA
        for dp in h.data_points:
            if not self._usable(dp, result):
                continue
            bounds = tuple(dp.explicit_bounds)
            if sum(dp.bucket_counts) >= MAX_COUNT:
                result.reject(R_COUNT_RANGE)
                continue
            counts = np.array(dp.bucket_counts if len(dp.bucket_counts) or bounds else [dp.count], np.int64)
            if len(counts) != len(bounds) + 1:
                result.reject(R_BUCKETS)
                continue
            if bounds and not (np.all(np.isfinite(bounds)) and np.all(np.diff(bounds) > 0)):
                result.reject(R_BOUNDS)
                continue
            if int(counts.sum()) != dp.count:
                result.reject(R_COUNT)
                continue
            labels = self._labels(dp.attributes, res)
            if labels is None:
                result.reject(R_TOO_LONG)
                continue
            point = HistPoint(bounds, counts, dp.count, dp.sum if dp.HasField("sum") else math.nan)
            if cumulative:
                point = self._hist.delta((name, labels), dp.start_time_unix_nano, dp.time_unix_nano, point, now)
                if point is None:
                    result.accepted += 1
                    continue
            if factor != 1.0:
                bounds = tuple(b * factor for b in bounds)
            result.merge(self.aggregator.record_custom(name, labels, dp.time_unix_nano, bounds, point.counts,
                                                       point.sum * factor, unit=unit, help=m.description))
            if dp.exemplars:
                self._exemplars(name, labels, dp, factor, result)

    def _expo_histograms(self, m, res, result: RecordResult, now: int) -> None:
        h = m.exponential_histogram
        name, factor, unit = metric_name(m.name, m.unit, False, False)
        cumulative = h.aggregation_temporality != DELTA
        for dp in h.data_points:
            if not self._usable(dp, result):
                continue
            if not expo.MIN_SCALE <= dp.scale <= expo.MAX_SCALE:
                result.reject(R_SCALE)
                continue
            if dp.zero_count + sum(dp.positive.bucket_counts) + sum(dp.negative.bucket_counts) >= MAX_COUNT:
                result.reject(R_COUNT_RANGE)
                continue
            pos = np.array(dp.positive.bucket_counts, np.int64)
            neg = np.array(dp.negative.bucket_counts, np.int64)
            if dp.zero_count + int(pos.sum()) + int(neg.sum()) != dp.count:
                result.reject(R_COUNT)
                continue
            labels = self._labels(dp.attributes, res)
            if labels is None:
                result.reject(R_TOO_LONG)
                continue
            point = expo.ExpoPoint(dp.scale, dp.zero_count, dp.positive.offset, pos, dp.negative.offset, neg,
                                   dp.count, dp.sum if dp.HasField("sum") else math.nan,
                                   dp.min if dp.HasField("min") else None, dp.max if dp.HasField("max") else None)
            if cumulative:
                d = self._expo.delta((name, labels), dp.start_time_unix_nano, dp.time_unix_nano, point, now)
                if d is None:
                    result.accepted += 1
                    continue
                # min/max of a cumulative point cover its whole life, not the delta
                point = d if d is point else expo.ExpoPoint(d.scale, d.zero_count, d.pos_offset, d.pos_counts,
                                                            d.neg_offset, d.neg_counts, d.count, d.sum)
            idx, cnt, clamped = expo.to_hdr(point, factor)
            mn = None if point.min is None else max(point.min * factor, 0.0)
            mx = None if point.max is None else max(point.max * factor, 0.0)
            r = self.aggregator.record_hdr(name, labels, dp.time_unix_nano, idx, cnt, point.sum * factor,
                                           mn, mx, unit=unit, help=m.description)
            r.clamped += clamped
            result.merge(r)
            if dp.exemplars:
                self._exemplars(name, labels, dp, factor, result)
