"""OTLP/gRPC with the real SDK exporter and raw channels."""
import time

import grpc
import numpy as np
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.grpc.exporter import Compression
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from collector.receiver.spans import METRIC
from test_otlp_http_traces import emit


@pytest.fixture
def channel(stack):
    with grpc.insecure_channel(stack.grpc_target) as ch:
        yield ch


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_sdk_grpc_exporter_counts_and_quantiles(stack, helpers, compression):
    service = f"checkout-grpc-{compression.name}"
    rng = np.random.default_rng(5)
    durations = rng.lognormal(np.log(0.2), 0.8, 2500).clip(1e-3, 100)
    emit(OTLPSpanExporter(endpoint=stack.grpc_target, insecure=True, compression=compression), service, durations)
    idx, cnt, _, _ = helpers.read_hist(stack.aggregator, METRIC, service_name=service, http_route="/pay")
    assert int(cnt.sum()) == 2500
    helpers.assert_quantiles(idx, cnt, durations)


def test_undecodable_request_is_invalid_argument_and_server_keeps_serving(stack, channel):
    raw = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\xff\xff\xff\xff\x0f", timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("cannot decode protobuf")
    assert raw(b"", timeout=5) == b""   # an empty request is valid and answered
    assert stack.metrics.requests.labels("grpc", "traces", "INVALID_ARGUMENT")._value.get() >= 1


def test_partial_success_over_grpc(stack, helpers, channel):
    now = time.time_ns()
    spans = [trace_pb2.Span(name="s", kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=now - 5_000_000,
                            end_time_unix_nano=now) for _ in range(4)]
    spans.append(trace_pb2.Span(name="s", kind=trace_pb2.Span.SPAN_KIND_SERVER, start_time_unix_nano=now,
                                end_time_unix_nano=now - 1))
    req = trace_service_pb2.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "grpc-partial"
    rs.scope_spans.add().spans.extend(spans)
    resp = trace_service_pb2_grpc.TraceServiceStub(channel).Export(req, timeout=5)
    assert resp.partial_success.rejected_spans == 1
    assert "1 end before start" in resp.partial_success.error_message
    _, cnt, _, _ = helpers.read_hist(stack.aggregator, METRIC, service_name="grpc-partial")
    assert cnt.sum() == 4


def test_logs_over_grpc(channel):
    req = logs_service_pb2.ExportLogsServiceRequest()
    req.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "hello"
    resp = logs_service_pb2_grpc.LogsServiceStub(channel).Export(req, timeout=5)
    assert not resp.HasField("partial_success")
