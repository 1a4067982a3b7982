"""The compiled span path: an OTLP ``ExportTraceServiceRequest`` body (protobuf)
→ the batch ``Aggregator.record_durations`` takes, in C
(``collector/receiver/spanwire/``, built as ``collector.receiver._spanwire``).

What is compiled: decoding and validating trace protobuf bodies (OTLP/HTTP and
OTLP/gRPC, and WAL replay), and the span loop of ``spans.SpanExtractor`` up to
the series keys. What stays in Python: OTLP JSON, metrics and logs, label
building per distinct series (not per span), HDR bucketing and the aggregator.
``spans.SpanExtractor`` remains the reference; the tests compare the two.

The compiled path is used when the extension is importable, the installed
opentelemetry-proto's trace messages are what the walker expects, and neither
``receivers.otlp.compiled: false`` nor ``TOCSIN_RECEIVERS__OTLP__COMPILED=false``
turns it off. ``TOCSIN_SPANWIRE_PATH`` loads the extension from a given file
(CI's AddressSanitizer build).
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import logging
import os
import struct
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

log = logging.getLogger(__name__)

ENV_SWITCH = "TOCSIN_RECEIVERS__OTLP__COMPILED"
ENV_PATH = "TOCSIN_SPANWIRE_PATH"
_FALSE = {"0", "false", "no", "off"}

# The messages the walker reads from, in the order its tables expect (spanwire.c: M_*).
_ROLE_MESSAGES = ("opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
                  "opentelemetry.proto.trace.v1.ResourceSpans",
                  "opentelemetry.proto.resource.v1.Resource",
                  "opentelemetry.proto.common.v1.KeyValue",
                  "opentelemetry.proto.common.v1.AnyValue",
                  "opentelemetry.proto.trace.v1.ScopeSpans",
                  "opentelemetry.proto.trace.v1.Span",
                  "opentelemetry.proto.trace.v1.Status")
# AnyValue's oneof members the walker knows (number -> FieldDescriptor type).
_ANY_VALUE = {1: 9, 2: 8, 3: 3, 4: 1, 5: 11, 6: 11, 7: 12, 8: 5}


def _load_module():
    """The extension module, or (None, why not)."""
    path = os.environ.get(ENV_PATH)
    try:
        if path:
            loader = importlib.machinery.ExtensionFileLoader("collector.receiver._spanwire", path)
            spec = importlib.util.spec_from_file_location("collector.receiver._spanwire", path, loader=loader)
            mod = importlib.util.module_from_spec(spec)
            loader.exec_module(mod)
            return mod, f"loaded from {path}"
        from collector.receiver import _spanwire
        return _spanwire, ""
    except ImportError as e:
        return None, f"the extension is not built ({e}); reinstall with a C compiler (gcc) to build it"


_MOD, _LOAD_NOTE = _load_module()


def schema() -> list[bytes]:
    """The trace request's message types as the walker's tables: per message,
    int32 quadruples (field number, FieldDescriptor type, message index, repeated).
    Raises ValueError when the installed messages are not what the walker reads."""
    root = ExportTraceServiceRequest.DESCRIPTOR
    order: list = []
    index: dict[str, int] = {}
    pending = [root]
    while pending:   # every message reachable from the request
        d = pending.pop(0)
        if d.full_name in index:
            continue
        index[d.full_name] = len(order)
        order.append(d)
        pending.extend(f.message_type for f in d.fields if f.message_type is not None)
    missing = [n for n in _ROLE_MESSAGES if n not in index]
    if missing:
        raise ValueError(f"trace messages lack {', '.join(missing)}")
    by_name = {d.full_name: d for d in order}
    order = [by_name[n] for n in _ROLE_MESSAGES] + [d for d in order if d.full_name not in _ROLE_MESSAGES]
    index = {d.full_name: i for i, d in enumerate(order)}
    av = by_name["opentelemetry.proto.common.v1.AnyValue"]
    got = {f.number: f.type for f in av.fields}
    if any(_ANY_VALUE.get(n) != t for n, t in got.items()) or \
            any(f.containing_oneof is None for f in av.fields):
        raise ValueError("AnyValue has members the compiled path does not know")
    out = []
    for d in order:
        if getattr(d.file, "syntax", "proto3") not in ("proto3", "editions"):
            raise ValueError(f"{d.full_name} is not proto3")
        q = []
        for f in d.fields:
            sub = index[f.message_type.full_name] if f.message_type is not None else -1
            repeated = f.label == f.LABEL_REPEATED if hasattr(f, "label") else f.is_repeated
            q.append(struct.pack("<iiii", f.number, f.type, sub, 1 if repeated else 0))
        out.append(b"".join(q))
    return out


def choose(setting: bool = True) -> tuple[bool, str]:
    """Whether the compiled path is used, and why (for the log line)."""
    if os.environ.get(ENV_SWITCH, "").strip().lower() in _FALSE:
        return False, f"turned off by {ENV_SWITCH}"
    if not setting:
        return False, "turned off by receivers.otlp.compiled: false"
    if _MOD is None:
        return False, _LOAD_NOTE
    try:
        schema()
    except ValueError as e:
        return False, f"the installed opentelemetry-proto does not fit it: {e}"
    return True, _LOAD_NOTE


def make_plan(wanted: dict[str, tuple[int, bool]], dims: tuple[str, ...], max_len: int, max_known: int = 100_000):
    """A Plan for ``SpanExtractor``'s wanted attributes (key -> (slot, primary)) and
    dimensions. The plan remembers up to ``max_known`` series keys (giving each a
    stable id, so labels are built once per key); past that it starts again."""
    pos = {d: i for i, d in enumerate(dims)}
    pos.pop("service.name", None)   # the reference reads service.name first (spans._resource)
    return _MOD.Plan(schema(), [(k.encode(), slot, primary) for k, (slot, primary) in wanted.items()],
                     [(k.encode(), i, True) for k, i in pos.items()], len(dims), max_len, max_known)


DecodeError = _MOD.DecodeError if _MOD is not None else ValueError


@dataclass
class DecodedTraces:
    """A trace request decoded by the compiled path: the C batch and the body
    (for the reference path when a label needs it, and for the WAL)."""

    batch: object
    data: bytes

    @property
    def received(self) -> int:
        return self.batch.received

    def message(self) -> ExportTraceServiceRequest:
        """The request as protobuf objects (the body is known to decode)."""
        return ExportTraceServiceRequest.FromString(self.data)

    def SerializeToString(self) -> bytes:   # noqa: N802 - the protobuf name, for callers that log it
        return bytes(self.data)
