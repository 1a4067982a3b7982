"""The real ``tocsin serve`` on each span path: the log line says which path is
active and why, and the same requests (over OTLP/HTTP and OTLP/gRPC, some spans
rejected) give the same answers and the same series through the query API."""
from __future__ import annotations

import time

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                        ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.receiver import fastspans
from serverproc import ServerProcess

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _request(tag: str) -> bytes:
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = f"paths-{tag}"
    rs.resource.attributes.add(key="deployment.environment").value.string_value = "prod"
    ss = rs.scope_spans.add()
    for i in range(60):
        sp = ss.spans.add(name=f"GET /r{i % 4}", kind=2 if i % 7 else 3, start_time_unix_nano=now - 10**6 * (i + 1),
                          end_time_unix_nano=now)
        sp.attributes.add(key="http.route").value.string_value = f"/r{i % 4}"
        sp.attributes.add(key="http.response.status_code").value.int_value = 200 if i % 5 else 503
        sp.status.code = 2 if i % 5 == 0 else 0
    ss.spans.add(name="reversed", kind=2, start_time_unix_nano=now, end_time_unix_nano=now - 5)
    ss.spans.add(name="x" * 5000, kind=2, start_time_unix_nano=now - 5, end_time_unix_nano=now)
    return req.SerializeToString()


def _series(srv: ServerProcess, service: str) -> list:
    deadline = time.time() + 20
    with srv.client() as c:
        while True:
            r = c.get("/api/v1/query", params={
                "query": f'sum by (span_name, http_route, http_response_status_code, status_code, span_kind, '
                         f'deployment_environment) (traces_span_metrics_calls_total{{service_name="{service}"}})'})
            res = r.json()["data"]["result"]
            if res or time.time() > deadline:
                return sorted((tuple(sorted(x["metric"].items())), x["value"][1]) for x in res)
            time.sleep(0.2)


@pytest.mark.skipif(not fastspans.choose()[0], reason=f"compiled path off: {fastspans.choose()[1]}")
def test_both_paths_answer_and_count_alike(tmp_path):
    cfg = {"rules": {"files": []}, "spanmetrics": {"dimensions": ["deployment.environment"]}}
    servers = {}
    try:
        for path in ("compiled", "python"):
            (tmp_path / path).mkdir()
            servers[path] = ServerProcess(
                tmp_path / path, {**cfg, "receivers": {"otlp": {"compiled": path == "compiled"}}},
                env={"TOCSIN_LOG__LEVEL": "info"}).start()
        assert "span ingest: compiled path" in servers["compiled"].output()
        assert ("span ingest: pure-Python path: turned off by receivers.otlp.compiled: false"
                in servers["python"].output())
        answers = {}
        for path, srv in servers.items():
            http = httpx.post(srv.http_url + "/v1/traces", content=_request("http"),
                              headers={"Content-Type": "application/x-protobuf"}, timeout=30)
            assert http.status_code == 200
            with grpc.insecure_channel(srv.grpc) as ch:
                via_grpc = ch.unary_unary(TRACES)(_request("grpc"), timeout=30)
            bad = httpx.post(srv.http_url + "/v1/traces", content=b"\x0a\x05\x12\x03\x12\x01\xff",
                             headers={"Content-Type": "application/x-protobuf"}, timeout=30)
            assert bad.status_code == 400
            answers[path] = (ExportTraceServiceResponse.FromString(http.content),
                             ExportTraceServiceResponse.FromString(via_grpc),
                             _series(srv, "paths-http"), _series(srv, "paths-grpc"))
        c, p = answers["compiled"], answers["python"]
        assert c[0].partial_success.rejected_spans == 2
        assert "1 end before start" in c[0].partial_success.error_message
        assert c[:2] == p[:2]
        assert c[2] and c[2] == p[2] and c[3] == p[3]
    finally:
        for srv in servers.values():
            srv.stop()


def test_the_environment_turns_the_compiled_path_off(tmp_path):
    srv = ServerProcess(tmp_path, {"rules": {"files": []}},
                        env={"TOCSIN_LOG__LEVEL": "info", "TOCSIN_RECEIVERS__OTLP__COMPILED": "false"}).start()
    try:
        assert "span ingest: pure-Python path: turned off by TOCSIN_RECEIVERS__OTLP__COMPILED" in srv.output()
        now = time.time_ns()
        req = ExportTraceServiceRequest()
        req.resource_spans.add().scope_spans.add().spans.append(
            trace_pb2.Span(name="x", kind=2, start_time_unix_nano=now - 10, end_time_unix_nano=now))
        r = httpx.post(srv.http_url + "/v1/traces", content=req.SerializeToString(),
                       headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        assert r.status_code == 200
    finally:
        srv.stop()
