"""Run one trace body through the compiled span path and the reference path
(upb + the Python loop in ``spans.SpanExtractor``), each into its own real
Aggregator on the same fixed clock, and describe everything observable, so a
test (or the fuzz harness in fuzz/) can assert the two are equal."""
from __future__ import annotations

import numpy as np
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.model import SeriesCatalog
from collector.receiver import fastspans
from collector.receiver.errors import TooLarge
from collector.receiver.settings import ReceiverSettings
from collector.receiver.spans import SpanExtractor

NOW = 1_700_000_000_000_000_000


def _plan(settings: ReceiverSettings):
    ex = SpanExtractor(None, settings)
    return fastspans.make_plan(ex._wanted, ex._dims, settings.max_attribute_length)


def observe(body: bytes, settings: ReceiverSettings, compiled: bool, now: int = NOW,
            resources: list | None = None) -> tuple:
    """What one path does with ``body``: ("decode error",), ("too large", message),
    or the outcome counts, the response and the aggregator's whole state.
    ``resources`` (a list) collects what the per-resource hook was called with."""
    agg = Aggregator(SeriesCatalog(), AggregatorSettings(max_series_per_metric=50), clock=lambda: now)
    ex = SpanExtractor(agg, settings)
    if resources is not None:
        ex.resource_hook = lambda res, aggregator: resources.append(res.SerializeToString(deterministic=True))
    if compiled:
        try:
            request = fastspans.DecodedTraces(_plan(settings).parse(body), body)
        except fastspans.DecodeError:
            return ("decode error",)
    else:
        try:
            request = ExportTraceServiceRequest.FromString(body)
        except (DecodeError, RecursionError):
            return ("decode error",)
    try:
        out = ex.extract(request)
    except TooLarge as e:
        return ("too large", str(e))
    r = out.result
    batch = agg.take_closed(force=True)
    h = batch.hist
    state = (tuple((s.id, s.metric, s.labels, s.kind) for s in batch.series),
             tuple(np.asarray(a).tobytes() for a in (h.series_id, h.ts, h.res, h.count, h.offsets, h.idx, h.cnt)),
             # sums are compared to the last bit too; min/max as well
             tuple(np.asarray(a, np.float64).tobytes() for a in (h.sum, h.min, h.max)),
             # exemplars: the same spans chosen, ids, values (to the bit) and times
             tuple(np.ascontiguousarray(a).tobytes() for a in exemplar_state(batch.exemplars)))
    return (out.received, r.accepted, r.rejected, tuple(sorted(r.reasons.items())), r.clamped,
            r.ignored, tuple(sorted(r.ignored_reasons.items())),
            out.response.SerializeToString(deterministic=True), state)


def exemplar_state(ex) -> tuple:
    return (ex.series_id, ex.ts, ex.grp, ex.at, np.asarray(ex.value, np.float64), ex.trace_id, ex.span_id)


def compare(body: bytes, settings: ReceiverSettings, now: int = NOW) -> tuple:
    """Both paths' observations; raises AssertionError naming the first difference."""
    res_c: list = []
    res_p: list = []
    c = observe(body, settings, True, now, res_c)
    p = observe(body, settings, False, now, res_p)
    if c != p:
        names = ("received", "accepted", "rejected", "reasons", "clamped", "response", "aggregator state")
        if c[0] in ("decode error", "too large") or p[0] in ("decode error", "too large"):
            raise AssertionError(f"compiled: {c[:2]!r}, reference: {p[:2]!r}")
        for name, a, b in zip(names, c, p):
            if a != b:
                raise AssertionError(f"{name} differs: compiled {str(a)[:300]} vs reference {str(b)[:300]}")
    if res_c != res_p:
        raise AssertionError(f"resource hook calls differ: {res_c[:3]} vs {res_p[:3]}")
    return c
