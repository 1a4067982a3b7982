"""The compiled span path against the reference (upb + the Python loop):
identical labels, slots, bucket counts, sums, rejections and partial-success
messages — on hypothesis-generated requests, on the malformed-input corpus, on
the fuzz corpus (fuzz/corpus/spans), and on truncated and bit-flipped bodies.

CI runs this file a second time against the AddressSanitizer build of the
extension (``TOCSIN_SPANWIRE_PATH``)."""
from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.receiver import fastspans
from collector.receiver.settings import ReceiverSettings
from spans_diff import NOW, compare, exemplar_state, observe

pytestmark = pytest.mark.skipif(not fastspans.choose()[0], reason=f"compiled path off: {fastspans.choose()[1]}")

CORPUS = Path(__file__).resolve().parents[2] / "fuzz" / "corpus" / "spans"
DIFF = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SETTINGS = [ReceiverSettings(),
            ReceiverSettings(max_attribute_length=12, span_dimensions=("deployment.environment", "peer")),
            ReceiverSettings(max_attribute_length=6, max_items_per_request=40,
                             span_dimensions=("http.route", "service.name", "peer", "peer"))]
KEYS = ["http.request.method", "http.method", "http.route", "http.response.status_code", "http.status_code",
        "deployment.environment", "peer", "service.name", "url.scheme", "", "ß.key"]


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def ld(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


# -- generated requests --------------------------------------------------------------------
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=14)


def any_values(depth: int = 1):
    scalar = st.one_of(
        texts.map(lambda s: AnyValue(string_value=s)),
        st.integers(-2**63, 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
        st.booleans().map(lambda b: AnyValue(bool_value=b)),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda f: AnyValue(double_value=f)),
        st.binary(max_size=8).map(lambda b: AnyValue(bytes_value=b)),
        st.just(AnyValue()))
    if depth <= 0:
        return scalar
    inner = any_values(depth - 1)
    return st.one_of(
        scalar, scalar, scalar,
        st.lists(inner, max_size=2).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(texts, inner), max_size=2).map(
            lambda kvs: AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs]))))


attributes = st.lists(st.tuples(st.sampled_from(KEYS), any_values()).map(lambda kv: KeyValue(key=kv[0], value=kv[1])),
                      max_size=7)
times = st.one_of(st.just(0), st.integers(NOW - 400 * 10**9, NOW + 400 * 10**9),
                  st.integers(0, 2**64 - 1), st.just(2**63), st.just(2**63 - 1))


# exemplars need a 16-byte trace id that is not all zero and an 8-byte span id: mostly valid ones
trace_ids = st.one_of(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16),
                      st.just(bytes(16)), st.binary(max_size=17))
span_ids = st.one_of(st.binary(min_size=8, max_size=8), st.binary(min_size=8, max_size=8), st.binary(max_size=9))


@st.composite
def spans(draw):
    start = draw(times)
    end = draw(st.one_of(times, st.integers(0, 4 * 10**9).map(lambda d: (start + d) % 2**64),
                         st.integers(0, 10**7).map(lambda d: (start + d) % 2**64)))
    sp = trace_pb2.Span(name=draw(texts), kind=draw(st.sampled_from([0, 1, 2, 2, 2, 3, 4, 5, 5, 7])),
                        start_time_unix_nano=start, end_time_unix_nano=end, attributes=draw(attributes),
                        trace_id=draw(trace_ids), span_id=draw(span_ids))
    code = draw(st.sampled_from([0, 1, 2, 3, -1, 2**31 - 1]))
    if code or draw(st.booleans()):
        sp.status.code = code
        sp.status.message = draw(texts)
    return sp


@st.composite
def requests(draw):
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 3))):
        rs = req.resource_spans.add()
        if draw(st.booleans()):
            rs.resource.attributes.extend(draw(attributes))
        for _ in range(draw(st.integers(0, 2))):
            rs.scope_spans.add().spans.extend(draw(st.lists(spans(), max_size=8)))
    return req


@DIFF
@given(requests(), st.sampled_from(range(len(SETTINGS))))
def test_generated_requests_agree(req, which):
    compare(req.SerializeToString(), SETTINGS[which])


@DIFF
@given(requests(), st.data())
def test_truncated_and_bit_flipped_bodies_agree(req, data):
    body = req.SerializeToString()
    if not body:
        return
    cut = data.draw(st.integers(0, len(body)))
    compare(body[:cut], SETTINGS[1])
    flipped = bytearray(body)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(body) - 1))
        flipped[pos] ^= 1 << data.draw(st.integers(0, 7))
    compare(bytes(flipped), SETTINGS[1])


def test_every_truncation_and_many_flips_of_a_realistic_request():
    """Exhaustive cuts of one small request, and 2 000 seeded random flips."""
    body = _realistic().SerializeToString()
    for cut in range(len(body) + 1):
        compare(body[:cut], SETTINGS[0])
    rnd = random.Random(15)
    for _ in range(2000):
        b = bytearray(body)
        for _ in range(rnd.randint(1, 4)):
            b[rnd.randrange(len(b))] ^= 1 << rnd.randrange(8)
        compare(bytes(b), SETTINGS[rnd.randrange(len(SETTINGS))])


def _realistic(n: int = 6) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in (("service.name", "checkout"), ("deployment.environment", "prod"), ("host.name", "web-7")):
        rs.resource.attributes.add(key=k).value.string_value = v
    ss = rs.scope_spans.add()
    ss.scope.name = "lib"
    for i in range(n):
        sp = ss.spans.add(name=f"GET /r{i % 3}", kind=2 if i % 4 else 3, start_time_unix_nano=NOW - 10**8 * (i + 1),
                          end_time_unix_nano=NOW - 10**6 * i, trace_id=bytes(range(i, i + 16)),
                          span_id=bytes([i % 256 + 1]) * 8)
        sp.attributes.add(key="http.request.method").value.string_value = "GET"
        sp.attributes.add(key="http.route").value.string_value = f"/r{i % 3}"
        sp.attributes.add(key="http.response.status_code").value.int_value = 200 + i % 2 * 300
        sp.attributes.add(key="user_agent.original").value.string_value = "Mozilla/5.0"
        sp.status.code = i % 3
        sp.events.add(name="e", time_unix_nano=NOW).attributes.add(key="k").value.bool_value = True
    return req


# -- encodings the protobuf library never writes -----------------------------------------------
def _span_bytes(**kw) -> bytes:
    base = dict(name="GET /", kind=2, start_time_unix_nano=NOW - 5 * 10**6, end_time_unix_nano=NOW)
    base.update(kw)
    return trace_pb2.Span(**base).SerializeToString()


def _kv(key: str, value: AnyValue) -> bytes:
    return KeyValue(key=key, value=value).SerializeToString()


WIRE_CASES = {
    # the resource after its spans: the reference reads it first all the same
    "resource after scope_spans": ld(1, ld(2, ld(2, _span_bytes()))
                                     + ld(1, ld(1, _kv("service.name", AnyValue(string_value="late"))))),
    # two resource fields merge; the last service.name wins
    "resource twice": ld(1, ld(1, ld(1, _kv("service.name", AnyValue(string_value="a")))) + ld(2, ld(2, _span_bytes()))
                      + ld(1, ld(1, _kv("service.name", AnyValue(string_value="b"))))),
    # a span's fields twice: the last name, kind and times win; statuses merge
    "span fields repeated": ld(1, ld(2, ld(2, _span_bytes(name="first") + _span_bytes(name="second", kind=5)
                                             + ld(15, varint(3 << 3) + varint(2)) + ld(15, b"")))),
    # a kind past int32 wraps as protobuf does (2**32 + 2 is SERVER)
    "kind wraps": ld(1, ld(2, ld(2, _span_bytes() + varint(6 << 3) + varint(2**32 + 2)))),
    # attribute value oneof set twice: the last member wins; key given twice: the last wins
    "value oneof twice": ld(1, ld(2, ld(2, _span_bytes() + ld(9, ld(1, b"http.method") + ld(2, ld(1, b"GET"))
                                                                   + ld(2, varint(3 << 3) + varint(7))
                                                                   + ld(1, b"http.route"))))),
    # unknown fields of every wire type, and an unknown group holding a nested group
    "unknown fields": ld(1, ld(2, ld(2, _span_bytes() + varint(99 << 3) + varint(5) + varint(98 << 3 | 1) + b"\0" * 8
                                     + varint(97 << 3 | 5) + b"\0" * 4 + ld(96, b"\xff\xfe")
                                     + varint(95 << 3 | 3) + varint(94 << 3 | 3) + varint(94 << 3 | 4)
                                     + varint(95 << 3 | 4)))),
    # a known field with the wrong wire type is an unknown field, not an error
    "wrong wire type": ld(1, ld(2, ld(2, _span_bytes() + varint(7 << 3) + varint(1) + varint(5 << 3) + varint(3)))),
    # non-minimal varints and lengths
    "non-minimal varints": ld(1, ld(2, b"\x92\x00" + b"\x80\x80\x80\x80\x00"
                                     + ld(2, _span_bytes() + b"\x30\x82\x80\x00")[:0]))
                           + ld(1, ld(2, ld(2, _span_bytes() + b"\x30\x82\x80\x00"))),
    "ten byte varint": ld(1, ld(2, ld(2, _span_bytes() + varint(6 << 3) + b"\x82" + b"\x80" * 8 + b"\x7f"))),
    "eleven byte varint": ld(1, ld(2, ld(2, _span_bytes() + varint(6 << 3) + b"\x82" + b"\x80" * 9 + b"\x01"))),
    "six byte tag": ld(1, ld(2, b"\x92\x80\x80\x80\x80\x00" + varint(0))),
    "field number 0": ld(1, b"\x00\x01"),
    "end group at top": varint(5 << 3 | 4),
    "mismatched end group": varint(5 << 3 | 3) + varint(6 << 3 | 4),
    "unterminated group": varint(5 << 3 | 3) + varint(6 << 3) + b"\x01",
    "wire type 6": varint(5 << 3 | 6),
    "length past parent": ld(1, varint(2 << 3 | 2) + varint(5)) + b"\0" * 5,
    "invalid utf-8 in a scope name": ld(1, ld(2, ld(1, ld(1, b"\xff")))),
    "invalid utf-8 in unknown bytes": ld(1, ld(99, b"\xff")),
    "surrogate in a span name": ld(1, ld(2, ld(2, ld(5, b"\xed\xa0\x80")))),
    "overlong in a key": ld(1, ld(2, ld(2, _span_bytes() + ld(9, ld(1, b"\xc0\x80"))))),
    "U+10FFFF in a value": ld(1, ld(2, ld(2, _span_bytes() + ld(9, ld(1, b"http.route")
                                                                   + ld(2, ld(1, "\U0010ffff".encode())))))),
    "past U+10FFFF": ld(1, ld(2, ld(2, ld(5, b"\xf4\x90\x80\x80")))),
    "packed-looking scalar": ld(1, ld(2, ld(2, _span_bytes() + ld(16, b"\x00\x00\x00")))),
    "bytes and double labels": ld(1, ld(2, ld(2, _span_bytes() + ld(9, _kv("http.route", AnyValue(bytes_value=b"\0\xff")))
                                             + ld(9, _kv("http.method", AnyValue(double_value=-0.0)))
                                             + ld(9, _kv("http.response.status_code",
                                                         AnyValue(double_value=float("nan"))))))),
    "array label (reference path)": ld(1, ld(2, ld(2, _span_bytes() + ld(9, _kv("http.route", AnyValue(
        array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(string_value="x")]))))))),
    # exemplar ids: the last trace_id / span_id field counts; wrong lengths or a zero trace id make none
    "ids repeated": ld(1, ld(2, ld(2, _span_bytes(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
                                     + ld(1, b"\x03" * 16) + ld(2, b"\x04" * 8)))),
    "ids repeated, the last too short": ld(1, ld(2, ld(2, _span_bytes(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
                                                         + ld(1, b"\x03" * 15)))),
    "zero trace id": ld(1, ld(2, ld(2, _span_bytes(trace_id=bytes(16), span_id=b"\x02" * 8)))),
    "long span id": ld(1, ld(2, ld(2, _span_bytes(trace_id=b"\x05" * 16, span_id=b"\x02" * 9)))),
    "ids as the wrong wire type": ld(1, ld(2, ld(2, _span_bytes(trace_id=b"\x05" * 16, span_id=b"\x02" * 8)
                                                   + varint(1 << 3) + varint(7) + varint(2 << 3 | 5) + b"abcd"))),
}


def _nested(levels: int) -> bytes:
    """A request whose innermost AnyValue sits ``levels`` messages below the top."""
    av = ld(1, b"x")
    for _ in range(levels):
        av = ld(5, ld(1, av))          # AnyValue.array_value.values[0]
    return ld(1, ld(2, ld(2, _span_bytes() + ld(9, ld(1, b"deep") + ld(2, av)))))


for n in (45, 46, 47, 48):   # 100 nested messages below the top is the limit on both paths
    WIRE_CASES[f"nested {6 + 2 * n} levels"] = _nested(n)
# inside an unknown group upb skips field number 0 like any other field (found by fuzz/fuzz_spans.py)
_G, _E = varint(20 << 3 | 3), varint(20 << 3 | 4)
for _name, _inner in {"0 0": b"\x00\x00", "0 1": b"\x00\x01", "0 then the end tag": b"\x00",
                      "0 then a field": b"\x00\x08\x01", "0 length-delimited": b"\x02\x01x",
                      "0 fixed64": b"\x01" + bytes(8), "0 fixed32": b"\x05" + bytes(4),
                      "group 0 inside": b"\x03\x04", "group 0 closed by 20": b"\x03",
                      "end group 0": b"\x04", "wire type 7": b"\x0f", "6-byte tag": b"\x88\x80\x80\x80\x80\x00\x01",
                      "string with bad UTF-8": b"\x0a\x01\xff"}.items():
    WIRE_CASES[f"unknown group: {_name}"] = _G + _inner + _E
    WIRE_CASES[f"unknown group in a span: {_name}"] = ld(1, ld(2, ld(2, _span_bytes() + _G + _inner + _E)))
WIRE_CASES["100 nested groups"] = (varint(20 << 3 | 3)) * 100 + (varint(20 << 3 | 4)) * 100
WIRE_CASES["101 nested groups"] = (varint(20 << 3 | 3)) * 101 + (varint(20 << 3 | 4)) * 101


@pytest.mark.parametrize("name", sorted(WIRE_CASES))
def test_unusual_encodings_agree(name):
    for s in SETTINGS:
        compare(WIRE_CASES[name], s)


def test_the_limits_decide_the_same():
    out = compare(WIRE_CASES["nested 100 levels"], SETTINGS[0])
    assert out[0] != "decode error"
    assert compare(WIRE_CASES["nested 102 levels"], SETTINGS[0]) == ("decode error",)
    assert compare(WIRE_CASES["101 nested groups"], SETTINGS[0]) == ("decode error",)
    big = ExportTraceServiceRequest()
    big.resource_spans.add().scope_spans.add().spans.extend(
        trace_pb2.Span(name="x", kind=2, start_time_unix_nano=1, end_time_unix_nano=2) for _ in range(41))
    assert compare(big.SerializeToString(), SETTINGS[2])[0] == "too large"


# -- the malformed-input corpus of the receiver tests ------------------------------------------
def _bad_input_bodies() -> dict[str, bytes]:
    import test_bad_input_corpus as c
    out = {}
    good = c.trace_request("trunc", [c.span() for _ in range(20)]).SerializeToString()
    for cut in (1, len(good) // 2, len(good) - 1):
        out[f"truncated at {cut}"] = good[:cut]
    for i, g in enumerate([b"\xff" * 64, b"\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", bytes(range(256)),
                           b"\x0a\x05hello"]):
        out[f"garbage {i}"] = g
    out["invalid utf-8"] = c.trace_request("XXXX", [c.span()]).SerializeToString().replace(b"XXXX", b"\xff\xfe\xfd\xfc")
    any_value = c._ld(1, b"bottom")
    for _ in range(200):
        any_value = c._ld(6, c._ld(1, c._ld(1, b"k") + c._ld(2, any_value)))
    span_bytes = c.span().SerializeToString() + c._ld(9, c._ld(1, b"deep") + c._ld(2, any_value))
    out["deeply nested"] = c._ld(1, c._ld(2, c._ld(2, span_bytes)))
    huge = "x" * 100_000
    spans = [c.span(), c.span(name=huge), c.span(),
             c.span(attributes=[{"key": "http.route", "value": {"string_value": huge}}])]
    out["huge strings"] = c.trace_request("huge", spans).SerializeToString()
    out["huge service"] = c.trace_request("s" * 50_000, [c.span()]).SerializeToString()
    now = NOW
    out["absurd times"] = c.trace_request("times", [
        trace_pb2.Span(name="ok", kind=2, start_time_unix_nano=now - 10**6, end_time_unix_nano=now),
        trace_pb2.Span(name="a", kind=2, start_time_unix_nano=0, end_time_unix_nano=now),
        trace_pb2.Span(name="b", kind=2, start_time_unix_nano=now, end_time_unix_nano=now - 5),
        trace_pb2.Span(name="c", kind=2, start_time_unix_nano=1, end_time_unix_nano=2**64 - 1),
        trace_pb2.Span(name="d", kind=2, start_time_unix_nano=1, end_time_unix_nano=2)]).SerializeToString()
    return out


BAD = _bad_input_bodies()


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_corpus_agrees(name):
    for s in SETTINGS:
        compare(BAD[name], s)


# -- the fuzz corpus --------------------------------------------------------------------------
def test_fuzz_corpus_agrees():
    files = sorted(CORPUS.glob("*"))
    assert len(files) >= 20, f"the fuzz corpus in {CORPUS} is missing"
    for f in files:
        data = f.read_bytes()
        for s in SETTINGS:
            compare(data, s)


# -- the compiled path is what runs ----------------------------------------------------------------
def test_a_realistic_request_takes_the_compiled_path_without_fallback():
    body = _realistic(50).SerializeToString()
    plan = fastspans.make_plan(*_wanted(SETTINGS[1]), SETTINGS[1].max_attribute_length)
    batch = plan.parse(body)
    assert not batch.fallback and batch.received == 50 and batch.n > 0
    out = observe(body, SETTINGS[1], True)
    assert out == observe(body, SETTINGS[1], False) and out[1] == batch.n


def test_bucketing_in_c_matches_record_durations():
    """Overflowing series, clamped durations, several slots, late and early spans,
    keys that collide on one series: what record_batch appends equals record_durations'."""
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "bulk"
    ss = rs.scope_spans.add()
    rnd = random.Random(7)
    for i in range(3000):
        end = NOW + rnd.randrange(-320, 320) * 10**9
        dur = rnd.choice([1, 999, 10**6, 3 * 10**9, 3_700 * 10**9, rnd.randrange(1, 10**10)])
        sp = ss.spans.add(name=f"op{i % 90}", kind=2, start_time_unix_nano=end - dur, end_time_unix_nano=end,
                          trace_id=rnd.choice([rnd.randbytes(16), bytes(16), b""]), span_id=rnd.randbytes(8))
        sp.status.code = rnd.choice([0, 1, 2, 7, 9])      # 7 and 9 both label as UNSET: two keys, one series
    out = compare(req.SerializeToString(), SETTINGS[0])
    received, accepted, rejected, reasons, clamped = out[:5]
    assert received == 3000 and accepted > 1000 and clamped > 0
    assert dict(reasons).keys() == {"too_old", "in_future"}
    series = out[8][0]
    assert any(dict(lbl).get("otel_metric_overflow") == "true" for _, _, lbl, _ in series)
    assert len(out[8][3][0]) > 500     # exemplars were chosen, and alike (compare checked them)


def _exemplar_request(rnd: random.Random, n: int = 2000) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "ex"
    ss = rs.scope_spans.add()
    for i in range(n):
        end = NOW - rnd.randrange(0, 40) * 10**9
        # a few distinct durations, so ties within an octave happen
        dur = rnd.choice([150_000, 150_000, 900_000, 2_500_000, 2_500_001, 40_000_000, 700_000_000,
                          rnd.randrange(1, 5 * 10**9)])
        ss.spans.add(name=f"op{i % 7}", kind=2, start_time_unix_nano=end - dur, end_time_unix_nano=end,
                     trace_id=rnd.choice([rnd.randbytes(16)] * 5 + [bytes(16)]), span_id=i.to_bytes(8, "big"))
    return req


def test_exemplars_are_the_slowest_span_per_series_slot_and_octave():
    """What both paths keep, checked against a direct reading of the request: per
    series, slot and octave of the HDR layout, the longest span with a usable trace
    id (the first one on a tie); the slowest span of every series and slot is among them."""
    from collector.aggregate import hdr
    from collector.aggregate.aggregator import Aggregator
    from collector.aggregate.exemplars import GROUPS
    from collector.model import SeriesCatalog
    from collector.receiver.spans import SpanExtractor
    req = _exemplar_request(random.Random(11))
    body = req.SerializeToString()
    compare(body, SETTINGS[0])
    agg = Aggregator(SeriesCatalog(), clock=lambda: NOW)
    SpanExtractor(agg, SETTINGS[0]).extract(fastspans.DecodedTraces(_plan0().parse(body), body))
    batch = agg.take_closed(force=True)
    names = {s.id: dict(s.labels)["span_name"] for s in batch.series}
    expect: dict = {}
    slowest: dict = {}
    for sp in req.resource_spans[0].scope_spans[0].spans:
        dur = sp.end_time_unix_nano - sp.start_time_unix_nano
        slot = sp.end_time_unix_nano // 10**10 * 10**10
        if not any(sp.trace_id):
            continue
        us = min(round(dur / 1000), hdr.HIGHEST_US)
        grp = int(hdr.index_of_units(np.array([us]))[0]) >> 7
        key = (sp.name, slot, grp)
        if key not in expect or dur > expect[key][0]:
            expect[key] = (dur, sp.span_id)
        if (sp.name, slot) not in slowest or dur > slowest[(sp.name, slot)]:
            slowest[(sp.name, slot)] = dur
    ex = batch.exemplars
    got = {(names[int(s)], int(t), int(g)): (round(v * 1e9), bytes(sid))
           for s, t, g, v, sid in zip(ex.series_id, ex.ts, ex.grp, ex.value, ex.span_id)}
    assert got == expect
    assert max(g for _, _, g in got) < GROUPS
    for (name, slot), dur in slowest.items():
        assert max(d for (n, t, _), (d, _) in got.items() if n == name and t == slot) == dur


def test_exemplars_off_keeps_none_on_both_paths():
    from collector.aggregate.aggregator import Aggregator, AggregatorSettings
    from collector.model import SeriesCatalog
    from collector.receiver.spans import SpanExtractor
    body = _exemplar_request(random.Random(2), 300).SerializeToString()
    for compiled in (True, False):
        agg = Aggregator(SeriesCatalog(), AggregatorSettings(exemplars=False), clock=lambda: NOW)
        msg = fastspans.DecodedTraces(_plan0().parse(body), body) if compiled else \
            ExportTraceServiceRequest.FromString(body)
        out = SpanExtractor(agg, SETTINGS[0]).extract(msg)
        batch = agg.take_closed(force=True)
        assert out.result.accepted == 300 and len(batch.hist) and len(batch.exemplars) == 0


def _plan0():
    return fastspans.make_plan(*_wanted(SETTINGS[0]), SETTINGS[0].max_attribute_length)


def test_series_key_ids_survive_the_plan_starting_again():
    """The plan remembers a bounded number of keys; past it, ids start again and
    the extractor rebuilds its labels: the aggregator sees the same series."""
    from collector.aggregate.aggregator import Aggregator, AggregatorSettings
    from collector.model import SeriesCatalog
    from collector.receiver.spans import SpanExtractor
    wanted, dims = _wanted(SETTINGS[0])
    plan = fastspans.make_plan(wanted, dims, 4096, max_known=7)
    ref, fast = (Aggregator(SeriesCatalog(), AggregatorSettings(), clock=lambda: NOW) for _ in range(2))
    ex_ref, ex_fast = SpanExtractor(ref, SETTINGS[0]), SpanExtractor(fast, SETTINGS[0])
    rnd = random.Random(3)
    for _ in range(150):   # past COMPACT_EVERY chunks per slot
        req = _realistic(rnd.randrange(1, 9))
        for sp in req.resource_spans[0].scope_spans[0].spans:
            sp.name = f"op{rnd.randrange(12)}"
        body = req.SerializeToString()
        ex_ref.extract(ExportTraceServiceRequest.FromString(body))
        ex_fast.extract(fastspans.DecodedTraces(plan.parse(body), body))
    a, b = ref.take_closed(force=True), fast.take_closed(force=True)
    assert [s.labels for s in a.series] == [s.labels for s in b.series]
    assert a.hist.cnt.tolist() == b.hist.cnt.tolist() and a.hist.idx.tolist() == b.hist.idx.tolist()
    assert a.hist.sum.tolist() == b.hist.sum.tolist()
    # exemplars merged over 150 requests' chunks (and the compiled path's raw chunks) alike
    assert len(a.exemplars) > 3
    assert [x.tobytes() for x in exemplar_state(a.exemplars)] == [x.tobytes() for x in exemplar_state(b.exemplars)]


def test_long_keys_bound_the_key_table_by_bytes_too():
    """Unique 4 000-character names: the plan's key table starts again past 16 MB of
    keys instead of growing with an attacker's cardinality (the ids stay right)."""
    wanted, dims = _wanted(SETTINGS[0])
    plan = fastspans.make_plan(wanted, dims, 4096)
    batches = []
    for r in range(3):
        req = ExportTraceServiceRequest()
        ss = req.resource_spans.add().scope_spans.add()
        for i in range(1500):
            ss.spans.add(name=f"{r}-{i}-" + "n" * 4000, kind=2, start_time_unix_nano=NOW - 10, end_time_unix_nano=NOW)
        b = plan.parse(req.SerializeToString())
        assert [k[1][:12] for k in b.keys] == [f"{r}-{i}-" + "n" * (12 - len(f"{r}-{i}-")) for i in range(1500)]
        batches.append(b)
    assert batches[0].known is batches[1].known and batches[2].known is not batches[0].known
    assert len(batches[2].known) == 1500


def test_the_resource_hook_sees_each_resource_once_on_both_paths():
    from collector.aggregate.aggregator import Aggregator
    from collector.model import SeriesCatalog
    from collector.receiver.ingest import Ingest
    from collector.selfmetrics import SelfMetrics
    req = _realistic(3)
    extra = req.resource_spans.add()
    extra.resource.attributes.add(key="service.name").value.string_value = "second"
    extra.scope_spans.add()
    body = req.SerializeToString()
    seen = {}
    for compiled in (True, False):
        ing = Ingest(Aggregator(SeriesCatalog(), clock=lambda: NOW), ReceiverSettings(compiled=compiled), SelfMetrics())
        calls = seen[compiled] = []
        ing.set_resource_hook(lambda res, agg, calls=calls: calls.append((res.attributes[0].value.string_value,
                                                                          type(agg).__name__)))
        msg = ing.decode_compiled("traces", body) or ExportTraceServiceRequest.FromString(body)
        assert isinstance(msg, fastspans.DecodedTraces) == compiled
        ing.handle("traces", msg, "acme")
    assert seen[True] == seen[False] == [("checkout", "TenantAggregator"), ("second", "TenantAggregator")]


def test_decode_errors_say_where():
    plan = fastspans.make_plan(*_wanted(SETTINGS[0]), 4096)
    with pytest.raises(fastspans.DecodeError, match=r"invalid UTF-8 in a string field at byte \d+"):
        plan.parse(WIRE_CASES["surrogate in a span name"])
    with pytest.raises(fastspans.DecodeError, match="nested too deeply"):
        plan.parse(WIRE_CASES["nested 102 levels"])


def _wanted(s: ReceiverSettings):
    from collector.receiver.spans import SpanExtractor
    ex = SpanExtractor(None, s)
    return ex._wanted, ex._dims


def test_the_extension_under_test_is_the_one_asked_for():
    """CI's sanitizer run loads the extension from TOCSIN_SPANWIRE_PATH: make sure it did."""
    import os
    path = os.environ.get(fastspans.ENV_PATH)
    if path:
        assert fastspans._MOD.__file__ == path
    else:
        assert Path(fastspans._MOD.__file__).parent == Path(fastspans.__file__).parent


def test_schema_quadruples_are_little_endian_int32():
    for b in fastspans.schema():
        assert len(b) % 16 == 0
        for num, typ, sub, rep in struct.iter_unpack("<iiii", b):
            assert num > 0 and 1 <= typ <= 18 and rep in (0, 1)
