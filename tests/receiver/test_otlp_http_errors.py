"""Every OTLP/HTTP error answer, with real requests; the server keeps serving."""
import gzip
import json
import time
import zlib

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

from collector.receiver.settings import MIB


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """1 GiB of zeros as one gzip member (~1 MB), compressed in 1 MiB steps."""
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    zeros = bytes(MIB)
    parts = [c.compress(zeros) for _ in range(1024)]
    parts.append(c.flush())
    return b"".join(parts)


def valid_json_trace():
    now = time.time_ns()
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                             "value": {"stringValue": "after-error"}}]},
                               "scopeSpans": [{"spans": [{"name": "ok", "kind": 2,
                                                          "startTimeUnixNano": str(now - 1000),
                                                          "endTimeUnixNano": str(now)}]}]}]}


def assert_still_serving(url):
    r = httpx.post(url + "/v1/traces", json=valid_json_trace())
    assert r.status_code == 200 and r.json() == {}


def status_of(r) -> status_pb2.Status:
    if r.headers["content-type"].startswith("application/x-protobuf"):
        return status_pb2.Status.FromString(r.content)
    return json_format.Parse(r.content, status_pb2.Status())


def test_garbage_protobuf_is_400_with_status_in_protobuf(stack):
    r = httpx.post(stack.http_url + "/v1/traces", content=b"\xff\xff\xff\xff\x0f",
                   headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 400
    st = status_of(r)
    assert st.code == code_pb2.INVALID_ARGUMENT and st.message.startswith("cannot decode protobuf")
    assert_still_serving(stack.http_url)


def test_invalid_json_is_400_and_says_where(stack):
    r = httpx.post(stack.http_url + "/v1/metrics", content=b'{"resourceMetrics": [}',
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert status_of(r).message.startswith("invalid JSON at line 1 column 22")
    r = httpx.post(stack.http_url + "/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "not-hex"}]}]}]})
    assert r.status_code == 400 and "resourceSpans[0].scopeSpans[0].spans[0].traceId" in status_of(r).message
    r = httpx.post(stack.http_url + "/v1/traces", json={"resourceSpans": [{"scopeSpans": [{"spans": [
        {"startTimeUnixNano": "soon"}]}]}]})
    assert r.status_code == 400 and status_of(r).message.startswith("invalid JSON: ")
    assert_still_serving(stack.http_url)


def test_bad_gzip_is_400(stack):
    r = httpx.post(stack.http_url + "/v1/traces", content=b"\x1f\x8bnot gzip at all",
                   headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "cannot decompress gzip" in status_of(r).message


def test_body_over_the_limit_is_413(stack):
    r = httpx.post(stack.http_url + "/v1/traces", content=b"\x00" * (5 * MIB),
                   headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 413
    assert status_of(r).code == code_pb2.RESOURCE_EXHAUSTED
    assert_still_serving(stack.http_url)


def test_body_over_the_limit_without_content_length_is_413(stack):
    def chunks():
        for _ in range(6):
            yield b"\x00" * MIB
    r = httpx.post(stack.http_url + "/v1/traces", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert_still_serving(stack.http_url)


def test_gzip_bomb_is_413_without_inflating_it(stack, gzip_bomb):
    assert len(gzip_bomb) < 4 * MIB
    t0 = time.monotonic()
    r = httpx.post(stack.http_url + "/v1/traces", content=gzip_bomb,
                   headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 413
    assert "decompressed body is over the limit" in status_of(r).message
    assert time.monotonic() - t0 < 5   # stopped at 32 MiB, not 1 GiB
    assert_still_serving(stack.http_url)


def test_gzip_and_deflate_bodies_are_accepted(stack):
    body = json.dumps(valid_json_trace()).encode()
    for enc, data in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                      ("deflate", zlib.compress(body)[2:-4])):   # raw deflate, no zlib header
        r = httpx.post(stack.http_url + "/v1/traces", content=data,
                       headers={"Content-Type": "application/json; charset=utf-8", "Content-Encoding": enc})
        assert r.status_code == 200, (enc, r.text)


def test_unsupported_media_type_and_encoding_are_415(stack):
    r = httpx.post(stack.http_url + "/v1/traces", content=b"hello", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and r.headers["content-type"].startswith("application/json")
    assert "text/plain" in status_of(r).message
    r = httpx.post(stack.http_url + "/v1/traces", content=b"{}",
                   headers={"Content-Type": "application/json", "Content-Encoding": "br"})
    assert r.status_code == 415 and "br" in status_of(r).message
    assert_still_serving(stack.http_url)


def test_wrong_method_is_405_and_unknown_path_404(stack):
    assert httpx.get(stack.http_url + "/v1/traces").status_code == 405
    assert httpx.put(stack.http_url + "/v1/metrics", content=b"").status_code == 405
    assert httpx.post(stack.http_url + "/v1/profiles", content=b"").status_code == 404


def test_logs_are_accepted_and_counted(stack):
    before = stack.metrics.items_received.labels("logs")._value.get()
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"timeUnixNano": str(time.time_ns()), "body": {"stringValue": "hi"},
         "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}] * 3}]}]}
    r = httpx.post(stack.http_url + "/v1/logs", json=doc)
    assert r.status_code == 200 and r.json() == {}
    assert stack.metrics.items_received.labels("logs")._value.get() - before == 3


def test_requests_are_counted_by_code(stack):
    httpx.post(stack.http_url + "/v1/traces", content=b"x", headers={"Content-Type": "text/plain"})
    assert stack.metrics.requests.labels("http", "traces", "415")._value.get() >= 1
