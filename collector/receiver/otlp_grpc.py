"""OTLP/gRPC: the Export methods of TraceService, MetricsService and LogsService.

Requests arrive as raw bytes and are decoded here, so that an undecodable
message is answered with INVALID_ARGUMENT and a reason (grpc's own
deserialisation failure would be an opaque INTERNAL). gzip is handled by grpc.
"""
from __future__ import annotations

import time

import grpc
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from collector.aggregate.aggregator import Aggregator
from collector.receiver.errors import BadRequest, ReceiveError
from collector.receiver.ingest import REQUEST_TYPES, Ingest
from collector.receiver.limits import DEFAULT_TENANT, Refused
from collector.receiver.settings import ReceiverSettings
from collector.auth import INGEST, Tokens, bearer
from collector.listen import ListenError, ensure_free
from collector.selfmetrics import SelfMetrics

_SERVICES = {
    "traces": trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
    "metrics": metrics_service_pb2.DESCRIPTOR.services_by_name["MetricsService"].full_name,
    "logs": logs_service_pb2.DESCRIPTOR.services_by_name["LogsService"].full_name,
}


def _handler(signal: str, ingest: Ingest, metrics: SelfMetrics, tokens: Tokens | None):
    request_type = REQUEST_TYPES[signal]
    need_token = tokens is not None and tokens.required(INGEST)
    limiter = ingest.limiter

    async def export(raw: bytes, context: grpc.aio.ServicerContext):
        t0 = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            tenant = DEFAULT_TENANT
            if need_token:
                presented = dict(context.invocation_metadata() or ()).get("authorization")
                tenant = tokens.check(INGEST, bearer(presented))
                if tenant is None:
                    code = grpc.StatusCode.UNAUTHENTICATED
                    await context.abort(code, "a valid ingest bearer token is required (metadata authorization)")
            try:
                limiter.enter(signal)
            except Refused as e:
                code = e.grpc_code
                await context.abort(code, e.reason, trailing_metadata=e.grpc_trailers())
            try:
                try:
                    message = ingest.decode_compiled(signal, raw) or request_type.FromString(raw)
                except (DecodeError, RecursionError) as e:
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    await context.abort(code, f"cannot decode protobuf: {e}")
                except BadRequest as e:
                    code = grpc.StatusCode.INVALID_ARGUMENT
                    await context.abort(code, e.reason)
                try:
                    return await ingest.handle_durable(signal, message, raw, tenant=tenant)
                except ReceiveError as e:
                    code = e.grpc_code
                    await context.abort(code, e.reason,
                                        trailing_metadata=e.grpc_trailers() if isinstance(e, Refused) else ())
            finally:
                limiter.leave()
        finally:
            metrics.requests.labels("grpc", signal, code.name).inc()
            metrics.request_duration.labels("grpc").observe(time.perf_counter() - t0)

    return grpc.unary_unary_rpc_method_handler(export, request_deserializer=None,
                                               response_serializer=lambda m: m.SerializeToString())


def make_grpc_server(aggregator: Aggregator, settings: ReceiverSettings, metrics: SelfMetrics, listen: str,
                     ingest: Ingest | None = None, tokens: Tokens | None = None,
                     reuseport: bool = False, first: bool = True,
                     key: str = "receivers.otlp.grpc.listen") -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server bound to ``listen`` (``host:port``; port 0 picks one) and
    the port it got. Call it from the event loop that will run it, then
    ``await server.start()``. gRPC sets SO_REUSEPORT by default, which would let a
    second Tocsin silently share the port and half the data: it is off unless
    ``reuseport`` (receiver workers of this process), and even then the first
    process checks nobody else holds the port. Raises ``ListenError``."""
    ingest = ingest or Ingest(aggregator, settings, metrics)
    opts = [("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.so_reuseport", 1 if reuseport else 0)]
    if first:
        ensure_free(listen, key)   # also spares the user grpc's own multi-line bind error
    server = grpc.aio.server(options=opts)
    handlers = [grpc.method_handlers_generic_handler(service, {"Export": _handler(signal, ingest, metrics, tokens)})
                for signal, service in _SERVICES.items()]
    server.add_generic_rpc_handlers(tuple(handlers))
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError:   # grpc >= 1.60 raises; older versions return 0
        port = 0
    if port == 0:
        ensure_free(listen, key)   # says why, when it can tell
        raise ListenError(key, listen, "gRPC could not bind it")
    return server, port
