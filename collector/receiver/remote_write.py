"""Prometheus remote write in: ``POST /api/v1/write`` on the API port.

Remote write 1.0 (``prometheus.WriteRequest``) and 2.0
(``io.prometheus.write.v2.Request``, chosen by ``Content-Type: application/
x-protobuf;proto=io.prometheus.write.v2.Request``), snappy block-compressed.
Float samples become samples (counters or gauges, from the sender's metadata,
else from the name's suffix); native histograms (schemas -4…8, integer counts)
map onto the HDR layout like OTLP exponential histograms, cumulative → delta
with the same saved state. The request goes through ``Ingest`` like OTLP: the
tenant's rate limit, the write-ahead log (replayed exactly once), then the
aggregator. Answers follow Prometheus's own receiver: 204 when everything was
written; 400 naming what was rejected while the rest is kept (a sender must not
retry it); 413/415 for bodies it cannot take; 429/503 with Retry-After for
backpressure. 2.0 answers carry the X-Prometheus-Remote-Write-*-Written headers.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from typing import Callable

import cramjam
import numpy as np
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from collector.aggregate import expo
from collector.aggregate.aggregator import RecordResult
from collector.aggregate.exemplars import id_row, ids_array
from collector.aggregate.temporality import CumulativeToDelta
from collector.model import KIND_COUNTER, KIND_GAUGE, Labels, make_labels
from collector.receiver import prompb
from collector.receiver.errors import BadRequest, ReceiveError, TooLarge, UnsupportedMediaType
from collector.receiver.limits import DEFAULT_TENANT, Refused
from collector.receiver.outcome import Outcome, error_message
from collector.receiver.settings import ReceiverSettings

V1, V2 = "prom_v1", "prom_v2"
MESSAGES = {V1: prompb.WriteRequest, V2: prompb.WriteRequestV2}
_PROTO = {"prometheus.WriteRequest": V1, "io.prometheus.write.v2.Request": V2}

R_NO_NAME = "missing_metric_name"
R_TOO_LONG = "label_value_too_long"
R_SCHEMA = "histogram_schema_not_supported"
R_FLOAT_HIST = "float_histogram_not_supported"
R_GAUGE_HIST = "gauge_histogram_not_supported"
R_BAD_HIST = "histogram_spans_do_not_match_counts"
R_TIME = "timestamp_out_of_range"
R_SYMBOL = "symbol_reference_out_of_range"
_MAX_MS = (2**63 - 1) // 1_000_000

_COUNTER_SUFFIXES = ("_total", "_count", "_sum", "_bucket")


def version_of(content_type: str | None) -> str:
    """Which message a Content-Type announces; remote write 1.0 senders may omit it."""
    if not content_type:
        return V1
    media, _, params = content_type.partition(";")
    if media.strip().lower() not in ("application/x-protobuf", "application/protobuf"):
        raise UnsupportedMediaType(f"unsupported Content-Type {media.strip()!r}: remote write sends "
                                   "application/x-protobuf")
    for p in params.split(";"):
        k, _, v = p.strip().partition("=")
        if k.strip().lower() == "proto":
            v = v.strip().strip('"')
            if v not in _PROTO:
                raise UnsupportedMediaType(f"unsupported remote write message {v!r}: Tocsin reads "
                                           "prometheus.WriteRequest (1.0) and io.prometheus.write.v2.Request (2.0)")
            return _PROTO[v]
    return V1


def _varint(data: bytes) -> int:
    n = shift = 0
    for i, b in enumerate(data[:10]):
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n
        shift += 7
    raise BadRequest("cannot decompress snappy body: bad length header")


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo snappy block compression; the declared size is checked before any
    memory is spent on it, so a bomb costs nothing."""
    enc = (encoding or "snappy").strip().lower()
    if enc != "snappy":
        raise UnsupportedMediaType(f"unsupported Content-Encoding {enc!r}: remote write bodies are snappy")
    if not body:
        return b""
    size = _varint(body)
    if size > limit:
        raise TooLarge(f"decompressed body would be {size} bytes, limit {limit}")
    try:
        return bytes(cramjam.snappy.decompress_raw(body))
    except Exception as e:   # cramjam raises DecompressionError (a ValueError-like) on corrupt input
        raise BadRequest(f"cannot decompress snappy body: {e}") from None


def parse(version: str, data: bytes):
    try:
        return MESSAGES[version].FromString(data)
    except Exception as e:   # google.protobuf.message.DecodeError
        raise BadRequest(f"cannot decode protobuf {MESSAGES[version].DESCRIPTOR.full_name}: {e}") from None


def count_items(request) -> int:
    return sum(len(ts.samples) + len(ts.histograms) for ts in request.timeseries)


def _kind(name: str, mtype: int) -> str:
    if mtype == prompb.COUNTER:
        return KIND_COUNTER
    if mtype == prompb.GAUGE:
        return KIND_GAUGE
    if mtype in (prompb.HISTOGRAM, prompb.SUMMARY):   # the float series of classic histograms and summaries
        return KIND_COUNTER if name.endswith(_COUNTER_SUFFIXES) else KIND_GAUGE
    return KIND_COUNTER if name.endswith(_COUNTER_SUFFIXES) else KIND_GAUGE


def _expand(spans, deltas, counts, integer: bool) -> tuple[int, np.ndarray] | None:
    """Prometheus spans + deltas (or absolute float counts) → (first index, dense counts)."""
    values = np.cumsum(np.asarray(deltas, np.int64)) if integer else np.asarray(counts, np.float64)
    if not spans:
        return (0, np.zeros(0, np.int64)) if len(values) == 0 else None
    total = sum(s.length for s in spans)
    if total != len(values):
        return None
    first = spans[0].offset
    width = sum(s.length for s in spans) + sum(s.offset for s in spans[1:])
    out = np.zeros(width, values.dtype)
    pos = src = 0
    for i, s in enumerate(spans):
        if i:
            pos += s.offset
        out[pos:pos + s.length] = values[src:src + s.length]
        pos += s.length
        src += s.length
    return first, out


def native_to_expo(h) -> expo.ExpoPoint | str:
    """A Prometheus native histogram as an OTLP-style exponential point, or the
    reason it cannot be. Prometheus bucket i covers (base^(i-1), base^i]; OTLP
    bucket k covers (base^k, base^(k+1)], so k = i - 1."""
    if not -4 <= h.schema <= 8:
        return R_SCHEMA
    integer = h.WhichOneof("count") != "count_float"
    pos = _expand(h.positive_spans, h.positive_deltas, h.positive_counts, integer)
    neg = _expand(h.negative_spans, h.negative_deltas, h.negative_counts, integer)
    if pos is None or neg is None:
        return R_BAD_HIST
    zero = h.zero_count_int if h.WhichOneof("zero_count") != "zero_count_float" else h.zero_count_float
    if not integer:   # float histograms (from recording rules): whole counts only
        arrays = [pos[1], neg[1], np.array([zero])]
        if any((a < 0).any() or (a != np.round(a)).any() for a in arrays):
            return R_FLOAT_HIST
        pos, neg, zero = (pos[0], pos[1].astype(np.int64)), (neg[0], neg[1].astype(np.int64)), int(zero)
    if (pos[1] < 0).any() or (neg[1] < 0).any():
        return R_BAD_HIST
    count = int(zero) + int(pos[1].sum()) + int(neg[1].sum())
    return expo.ExpoPoint(h.schema, int(zero), pos[0] - 1, pos[1], neg[0] - 1, neg[1], count, float(h.sum))


class _Floats:
    """The float samples of one request, gathered per metric so each metric is
    one ``record_samples`` call (a call per series costs more than the decode)."""

    def __init__(self):
        self.by_metric: dict[str, tuple[str, str, str, dict, list, list, list]] = {}

    def add(self, name: str, kind: str, help_: str, unit: str, labels: Labels, samples, result: RecordResult) -> None:
        m = self.by_metric.get(name)
        if m is None:
            m = self.by_metric[name] = (kind, help_, unit, {}, [], [], [])
        index, which, ts, values = m[3], m[4], m[5], m[6]
        local = index.setdefault(labels, len(index))
        for s in samples:
            t = s.timestamp
            if -_MAX_MS <= t <= _MAX_MS:
                which.append(local)
                ts.append(t)
                values.append(s.value)
            else:
                result.reject(R_TIME)

    def record(self, aggregator, result: RecordResult) -> None:
        for name, (kind, help_, unit, index, which, ts, values) in self.by_metric.items():
            if which:
                result.merge(aggregator.record_samples(
                    name, kind, list(index), np.array(which, np.int64), np.array(ts, np.int64) * 1_000_000,
                    np.array(values, np.float64), unit=unit, help=help_))


_TRACE_KEYS = ("trace_id", "traceid")   # label names senders use, compared lowercased
_SPAN_KEYS = ("span_id", "spanid")


def exemplar_ids(labels) -> bytes | None:
    """The 24 id bytes of a Prometheus exemplar's labels (``trace_id``/``traceID``, hex, 128 or
    64 bits; ``span_id`` optional), or None when it names no usable trace."""
    trace = span = ""
    for k, v in labels:
        low = k.lower()
        if low in _TRACE_KEYS:
            trace = v
        elif low in _SPAN_KEYS:
            span = v
    try:
        t = bytes.fromhex(trace.rjust(32, "0")) if len(trace) in (16, 32) else b""
        s = bytes.fromhex(span) if len(span) == 16 else bytes(8)
    except ValueError:
        return None
    row = id_row(t, s)
    return row if any(row) else None


class RemoteWriteExtractor:
    """One per tenant (like ``MetricExtractor``, whose exponential-histogram
    cumulative → delta state it shares, so that state is saved with the data)."""

    def __init__(self, aggregator, settings: ReceiverSettings, expo_deltas: CumulativeToDelta,
                 clock: Callable[[], int] | None = None, max_metadata: int = 100_000):
        self.aggregator = aggregator
        self.settings = settings
        self.expo_deltas = expo_deltas
        self.clock = clock or (lambda: aggregator.clock())   # read late: WAL replay swaps the clock
        self._types: OrderedDict[str, tuple[int, str, str]] = OrderedDict()   # family -> (type, help, unit), v1
        self._max_metadata = max_metadata
        self._seen: dict[tuple, tuple] = {}     # label pairs -> (name, labels, refusal)
        self._max_seen = 200_000

    def extract(self, version: str, request) -> Outcome:
        received = count_items(request)
        if received > self.settings.max_items_per_request:
            raise TooLarge(f"request has {received} samples and histograms, limit "
                           f"{self.settings.max_items_per_request}")
        result = RecordResult()
        batch = _Floats()
        self._pending_exemplars: list = []   # (name, labels, exemplar) recorded once the series exist
        if version == V1:
            for md in request.metadata:
                self._types[md.metric_family_name] = (md.type, md.help, md.unit)
                self._types.move_to_end(md.metric_family_name)
                if len(self._types) > self._max_metadata:
                    self._types.popitem(last=False)
            for ts in request.timeseries:
                self._series(tuple((lb.name, lb.value) for lb in ts.labels), ts, None, 0, result, batch)
                for ex in ts.exemplars:
                    self._exemplar(ts, [(lb.name, lb.value) for lb in ex.labels], ex)
        else:
            symbols = request.symbols
            for ts in request.timeseries:
                refs = ts.labels_refs
                try:
                    labels = tuple((symbols[refs[i]], symbols[refs[i + 1]]) for i in range(0, len(refs) - 1, 2))
                    md = ts.metadata
                    meta = (md.type, symbols[md.help_ref], symbols[md.unit_ref])
                except IndexError:
                    result.reject(R_SYMBOL, len(ts.samples) + len(ts.histograms))
                    continue
                self._series(labels, ts, meta, ts.created_timestamp, result, batch)
                for ex in ts.exemplars:
                    r = ex.labels_refs
                    if all(i < len(symbols) for i in r):
                        self._exemplar(labels, [(symbols[r[i]], symbols[r[i + 1]]) for i in range(0, len(r) - 1, 2)],
                                       ex)
        batch.record(self.aggregator, result)
        self._record_exemplars(result)
        return Outcome(result, "metrics", received, result)

    def _exemplar(self, series, ex_labels, ex) -> None:
        """``series``: the TimeSeries (1.0, its labels read here) or its label pairs (2.0)."""
        ids = exemplar_ids(ex_labels)
        if ids is None or not math.isfinite(ex.value) or abs(ex.timestamp) > _MAX_MS:
            return
        pairs = series if isinstance(series, tuple) else tuple((lb.name, lb.value) for lb in series.labels)
        name, labels, refused = self._identity(pairs)
        if not refused:
            self._pending_exemplars.append((name, labels, ids, ex.value, ex.timestamp * 1_000_000))

    def _record_exemplars(self, result: RecordResult) -> None:
        for name, labels, ids, value, t_ns in self._pending_exemplars:
            result.exemplars += self.aggregator.record_exemplars(name, labels, t_ns, np.array([value]),
                                                                 np.array([t_ns], np.int64), ids_array([ids]))
        self._pending_exemplars = []

    def _meta(self, name: str) -> tuple[int, str, str]:
        m = self._types.get(name)
        if m is None:
            for suffix in _COUNTER_SUFFIXES:
                if name.endswith(suffix):
                    m = self._types.get(name[: -len(suffix)])
                    if m is not None:
                        break
        return m or (0, "", "")

    def _identity(self, pairs: tuple) -> tuple[str, Labels | None, str | None]:
        """(metric name, labels, reason to refuse) of a series' label pairs; cached,
        since a sender repeats the same series in every request."""
        hit = self._seen.get(pairs)
        if hit is not None:
            return hit
        d = dict(pairs)
        name = d.pop("__name__", "")
        max_len = self.settings.max_attribute_length
        if not name:
            out = (name, None, R_NO_NAME)
        elif any(len(v) > max_len for v in d.values()):
            out = (name, None, R_TOO_LONG)
        else:
            out = (name, make_labels(d), None)
        if len(self._seen) >= self._max_seen:
            self._seen.clear()
        self._seen[pairs] = out
        return out

    def _series(self, pairs: tuple, ts, meta, created_ms: int, result: RecordResult, batch: "_Floats") -> None:
        name, labels, refused = self._identity(pairs)
        if refused:
            result.reject(refused, len(ts.samples) + len(ts.histograms))
            return
        mtype, help_, unit = meta if meta is not None and meta[0] else self._meta(name)
        if ts.samples:
            batch.add(name, _kind(name, mtype), help_, unit, labels, ts.samples, result)
        if ts.histograms:
            self._histograms(name, labels, ts.histograms, created_ms, help_, result)

    def _histograms(self, name: str, labels: Labels, histograms, created_ms: int, help_: str,
                    result: RecordResult) -> None:
        now = self.clock()
        start_ns = created_ms * 1_000_000 if 0 < created_ms <= _MAX_MS else 0
        unit = "s" if name.endswith("_seconds") else ""
        for h in histograms:
            if h.reset_hint == prompb.RESET_GAUGE:
                result.reject(R_GAUGE_HIST)
                continue
            if abs(h.timestamp) > _MAX_MS:
                result.reject(R_TIME)
                continue
            point = native_to_expo(h)
            if isinstance(point, str):
                result.reject(point)
                continue
            t_ns = h.timestamp * 1_000_000
            # Prometheus gives no start time in 1.0: the first point of a series is its baseline,
            # a count going down is a reset (then the point itself is the delta).
            delta = self.expo_deltas.delta((name, labels), start_ns, t_ns, point, now)
            if delta is None:
                result.accepted += 1
                continue
            idx, cnt, clamped = expo.to_hdr(delta, 1.0)
            total = delta.sum if math.isfinite(delta.sum) else 0.0
            r = self.aggregator.record_hdr(name, labels, t_ns, idx, cnt, total, unit=unit, help=help_)
            r.clamped += clamped
            result.merge(r)


def _written_headers(result: RecordResult, request, version: str) -> dict[str, str]:
    if version != V2:
        return {}
    hist = sum(len(ts.histograms) for ts in request.timeseries)
    samples = sum(len(ts.samples) for ts in request.timeseries)
    # rejected items are not told apart by kind: count them against samples first
    rej_s = min(result.rejected, samples)
    rej_h = result.rejected - rej_s
    return {"X-Prometheus-Remote-Write-Samples-Written": str(samples - rej_s),
            "X-Prometheus-Remote-Write-Histograms-Written": str(max(0, hist - rej_h)),
            "X-Prometheus-Remote-Write-Exemplars-Written": str(result.exemplars)}


def routes(ctx) -> list[Route]:
    """``POST /api/v1/write``, answered through the service's shared ``Ingest``."""
    from collector.receiver.otlp_http import read_body

    async def write(request: Request) -> Response:
        ingest = ctx.ingest
        metrics, settings, limiter = ingest.metrics, ingest.settings, ingest.limiter
        t0 = time.perf_counter()
        version = V1
        try:
            version = version_of(request.headers.get("content-type"))
            limiter.enter("metrics")
            try:
                body = await read_body(request, settings.max_request_bytes)
                data = decompress(body, request.headers.get("content-encoding"), settings.max_decompressed_bytes)
                del body
                message = parse(version, data)
                tenant = request.scope.get("state", {}).get("tenant", DEFAULT_TENANT)
                result = await ingest.handle_durable(version, message, data, tenant=tenant)
            finally:
                limiter.leave()
            headers = _written_headers(result, message, version)
            if result.rejected:
                response = PlainTextResponse(error_message(result, "samples and histograms"), status_code=400,
                                             headers=headers)
            else:
                response = Response(status_code=204, headers=headers)
        except Refused as e:
            response = PlainTextResponse(e.reason, status_code=e.http_status,
                                         headers={"Retry-After": e.retry_after_header})
        except ReceiveError as e:
            response = PlainTextResponse(e.reason, status_code=e.http_status)
        metrics.requests.labels("remote_write", "metrics", str(response.status_code)).inc()
        metrics.request_duration.labels("remote_write").observe(time.perf_counter() - t0)
        return response

    return [Route("/api/v1/write", write, methods=["POST"])]
