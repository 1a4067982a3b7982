"""A gRPC exporter pointed at the OTLP/HTTP port: one warning in Tocsin's log
format naming the sender and where gRPC goes, instead of uvicorn's bare
"Invalid HTTP request received."."""
import re
import socket
import time

import httpx
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind


def test_grpc_to_the_http_port_is_logged_with_peer_and_hint(server_factory):
    srv = server_factory({"rules": {"files": []}})
    provider = TracerProvider(resource=Resource.create({"service.name": "misconfigured"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=srv.http_url, insecure=True,
                                                                     timeout=2)))
    for _ in range(3):
        provider.get_tracer("t").start_span("GET /", kind=SpanKind.SERVER).end()
    provider.shutdown()
    pattern = (r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING tocsin\.receiver: 127\.0\.0\.1:\d+ sent HTTP/2 "
               rf"\(a gRPC exporter\?\) to the OTLP/HTTP port {re.escape(srv.http)}; point gRPC exporters at "
               rf"{re.escape(srv.grpc)}, or send http/protobuf to this port\n")
    deadline = time.time() + 20
    while time.time() < deadline and not re.search(pattern, srv.output()):
        time.sleep(0.1)
    out = srv.output()
    assert re.search(pattern, out), out
    assert len(re.findall(pattern, out)) == 1, out          # once per sender per minute, not per retry
    assert "Invalid HTTP request received" not in out
    # a plain broken request to the API names its sender too, and the server keeps serving
    host, port = srv.api.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\x16\x03\x01 not http\r\n\r\n")   # e.g. TLS to a plain-HTTP port
        assert s.recv(100).startswith(b"HTTP/1.1 400")
    pattern = (r"WARNING tocsin\.receiver: 127\.0\.0\.1:\d+ sent a request that is not HTTP/1\.1 \(answered 400\) "
               rf"to the API port {re.escape(srv.api)}\n")
    deadline = time.time() + 10
    while time.time() < deadline and not re.search(pattern, srv.output()):
        time.sleep(0.1)
    assert re.search(pattern, srv.output()), srv.output()
    assert httpx.get(srv.api_url + "/-/ready").status_code == 200
