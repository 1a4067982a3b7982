"""Property-based fuzzing of the OTLP decode + extract path (hypothesis).

Random bytes, random mutations of valid protobuf and JSON bodies, and random
content encodings never raise anything but the receiver's own ``ReceiveError``;
random but valid spans keep the count invariant: every SERVER/CONSUMER span is
either accepted or rejected with a reason."""
from __future__ import annotations

import gzip
import json
import time
import zlib

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.metrics.v1 import metrics_pb2

from collector.aggregate.aggregator import Aggregator
from collector.model import SeriesCatalog
from collector.receiver import decode
from collector.receiver.errors import ReceiveError
from collector.receiver.ingest import REQUEST_TYPES, Ingest
from collector.receiver.otlp_http import _parse
from collector.receiver.settings import ReceiverSettings
from collector.selfmetrics import SelfMetrics

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def ingest():
    return Ingest(Aggregator(SeriesCatalog()), ReceiverSettings(max_attribute_length=64), SelfMetrics())


def receive(ingest: Ingest, signal: str, data: bytes, fmt: str, encoding: str | None = None):
    """The HTTP receiver's path after the body is read: decompress, parse, extract."""
    try:
        data = decode.decompress(data, encoding, 1 << 20)
        message = _parse(REQUEST_TYPES[signal], data, fmt)
        return ingest.handle(signal, message)
    except ReceiveError as e:
        assert e.reason and 400 <= e.http_status < 500
        return None


def valid_traces() -> bytes:
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "fuzz"
    ss = rs.scope_spans.add()
    for i in range(3):
        s = ss.spans.add(name=f"GET /{i}", kind=2, start_time_unix_nano=now - 10**6, end_time_unix_nano=now)
        s.attributes.add(key="http.route").value.string_value = f"/{i}"
        s.attributes.add(key="http.response.status_code").value.int_value = 200
    return req.SerializeToString()


def valid_metrics() -> bytes:
    now = time.time_ns()
    req = ExportMetricsServiceRequest()
    sm = req.resource_metrics.add().scope_metrics.add()
    g = sm.metrics.add(name="fuzz.gauge")
    g.gauge.data_points.add(time_unix_nano=now, as_double=1.5).attributes.add(key="k").value.string_value = "v"
    h = sm.metrics.add(name="fuzz.hist", unit="ms")
    h.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
    h.histogram.data_points.add(time_unix_nano=now, start_time_unix_nano=now - 10**9, count=3, sum=4.0,
                                explicit_bounds=[1, 10], bucket_counts=[1, 1, 1])
    e = sm.metrics.add(name="fuzz.expo", unit="s")
    e.exponential_histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    dp = e.exponential_histogram.data_points.add(time_unix_nano=now, count=3, sum=1.0, scale=2, zero_count=1)
    dp.positive.bucket_counts.extend([1, 1])
    s = sm.metrics.add(name="fuzz.requests")
    s.sum.is_monotonic = True
    s.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    s.sum.data_points.add(time_unix_nano=now, as_int=3)
    return req.SerializeToString()


VALID = {"traces": valid_traces(), "metrics": valid_metrics()}
VALID_JSON = {sig: decode.encode(REQUEST_TYPES[sig].FromString(b), decode.JSON) for sig, b in VALID.items()}
signals = st.sampled_from(["traces", "metrics", "logs"])


@st.composite
def mutated(draw, base: bytes) -> bytes:
    """Flip, delete, insert or duplicate a few byte ranges of ``base``."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "delete":
            del data[pos:pos + draw(st.integers(1, 8))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "truncate":
            del data[pos:]
        else:
            data[pos:pos] = data[pos:pos + draw(st.integers(1, 32))]
    return bytes(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


def replace_random_node(doc, draw):
    """Replace one randomly chosen value somewhere in ``doc`` with a random JSON value."""
    path, node = [], doc
    while isinstance(node, (dict, list)) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    if not path:
        return draw(json_values)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = draw(json_values)
    return doc


@FUZZ
@given(data=st.binary(max_size=512), signal=signals, fmt=st.sampled_from([decode.PROTOBUF, decode.JSON]))
def test_random_bytes_only_raise_receive_errors(ingest, data, signal, fmt):
    receive(ingest, signal, data, fmt)


@FUZZ
@given(data=st.data(), signal=st.sampled_from(["traces", "metrics"]))
def test_mutated_protobuf_only_raise_receive_errors(ingest, data, signal):
    receive(ingest, signal, data.draw(mutated(VALID[signal])), decode.PROTOBUF)


@FUZZ
@given(data=st.data(), signal=st.sampled_from(["traces", "metrics"]))
def test_mutated_json_text_only_raise_receive_errors(ingest, data, signal):
    receive(ingest, signal, data.draw(mutated(VALID_JSON[signal])), decode.JSON)


@FUZZ
@given(data=st.data(), signal=st.sampled_from(["traces", "metrics"]))
def test_json_with_wrong_types_anywhere_only_raise_receive_errors(ingest, data, signal):
    doc = json.loads(VALID_JSON[signal])
    for _ in range(data.draw(st.integers(1, 3))):
        doc = replace_random_node(doc, data.draw)
    receive(ingest, signal, json.dumps(doc).encode(), decode.JSON)


@FUZZ
@given(data=st.data(), encoding=st.sampled_from(["gzip", "deflate", "x-gzip", "identity", "br", "", "GZIP"]))
def test_compressed_mutations_only_raise_receive_errors(ingest, data, encoding):
    raw = VALID["traces"]
    packed = zlib.compress(raw) if encoding == "deflate" else gzip.compress(raw) if "gzip" in encoding.lower() \
        else raw
    receive(ingest, "traces", data.draw(mutated(packed)), decode.PROTOBUF, encoding)


spans = st.builds(
    dict,
    name=st.text(max_size=80),
    kind=st.integers(0, 6),
    start_off=st.integers(-10**10, 10**12),          # may end before it starts
    age=st.integers(-10**12, 10**12),                # may be too old or in the future
    status=st.integers(0, 4),
    route=st.one_of(st.none(), st.text(max_size=100)),
    code=st.one_of(st.none(), st.integers(-2**63, 2**63 - 1)),
    zero=st.booleans(),
)


@FUZZ
@given(batch=st.lists(spans, max_size=40), via_json=st.booleans())
def test_random_valid_spans_are_all_accounted_for(ingest, batch, via_json):
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for s in batch:
        end = max(now - s["age"], 1)
        span = ss.spans.add(name=s["name"], kind=s["kind"], end_time_unix_nano=end,
                            start_time_unix_nano=0 if s["zero"] else max(end - s["start_off"], 1))
        span.status.code = s["status"] % 3
        if s["route"] is not None:
            span.attributes.add(key="http.route").value.string_value = s["route"]
        if s["code"] is not None:
            span.attributes.add(key="http.response.status_code").value.int_value = s["code"]
    if via_json:
        body, fmt = decode.encode(req, decode.JSON), decode.JSON
    else:
        body, fmt = req.SerializeToString(), decode.PROTOBUF
    m = ingest.metrics
    before = (m.items_received.labels("traces")._value.get(), m.items_accepted.labels("traces")._value.get())
    response = receive(ingest, "traces", body, fmt)
    assume(response is not None)
    counted = sum(1 for s in batch if s["kind"] in (2, 5))   # only SERVER and CONSUMER spans are counted
    rejected = response.partial_success.rejected_spans
    accepted = m.items_accepted.labels("traces")._value.get() - before[1]
    assert accepted + rejected == counted
    assert m.items_received.labels("traces")._value.get() - before[0] == len(batch)
    if rejected:
        assert response.partial_success.error_message.startswith(f"{rejected} spans rejected: ")
