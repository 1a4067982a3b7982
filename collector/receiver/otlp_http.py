"""OTLP/HTTP: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``.

The handler only reads the body (bounded), decodes it and hands the message to
``Ingest``; responses use the request's content type. Errors are answered with
a ``google.rpc.Status`` as the OTLP/HTTP spec asks.
"""
from __future__ import annotations

import time

from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from collector.aggregate.aggregator import Aggregator
from collector.receiver import decode
from collector.receiver.errors import BadRequest, ReceiveError, TooLarge
from collector.receiver.ingest import REQUEST_TYPES, Ingest
from collector.receiver.limits import DEFAULT_TENANT, Refused
from collector.receiver.settings import ReceiverSettings
from collector.selfmetrics import SelfMetrics

_RPC_CODES = {400: code_pb2.INVALID_ARGUMENT, 413: code_pb2.RESOURCE_EXHAUSTED, 415: code_pb2.INVALID_ARGUMENT,
              429: code_pb2.RESOURCE_EXHAUSTED, 503: code_pb2.UNAVAILABLE}


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing (413) as soon as it is longer than ``limit``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise TooLarge(f"body is {int(length)} bytes, limit {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _status_response(err: ReceiveError, fmt: str) -> Response:
    code = _RPC_CODES.get(err.http_status, code_pb2.INVALID_ARGUMENT)
    if isinstance(err, Refused):   # retryable: Retry-After, and RetryInfo in the Status details
        return Response(decode.encode(err.rpc_status(code), fmt), status_code=err.http_status, media_type=fmt,
                        headers={"Retry-After": err.retry_after_header})
    msg = status_pb2.Status(code=code, message=err.reason)
    return Response(decode.encode(msg, fmt), status_code=err.http_status, media_type=fmt)


def _parse(request_type, data: bytes, fmt: str):
    try:
        return decode.parse(request_type, data, fmt)
    except RecursionError:   # JSON (or protobuf) nested deeper than the interpreter's stack
        raise BadRequest("invalid body: nested too deeply") from None


def make_otlp_http_app(aggregator: Aggregator, settings: ReceiverSettings, metrics: SelfMetrics,
                       ingest: Ingest | None = None) -> Starlette:
    """The OTLP/HTTP ASGI app. Pass the service's shared ``Ingest`` so that HTTP
    and gRPC share the temporality state; one is made when omitted."""
    ingest = ingest or Ingest(aggregator, settings, metrics)
    limiter = ingest.limiter

    def endpoint(signal: str):
        request_type = REQUEST_TYPES[signal]

        async def handle(request: Request) -> Response:
            t0 = time.perf_counter()
            fmt = decode.JSON
            try:
                fmt = decode.media_type(request.headers.get("content-type"))
                limiter.enter(signal)
                try:
                    body = await read_body(request, settings.max_request_bytes)
                    data = decode.decompress(body, request.headers.get("content-encoding"),
                                             settings.max_decompressed_bytes)
                    del body
                    message = ingest.decode_compiled(signal, data) if fmt == decode.PROTOBUF else None
                    if message is None:
                        message = _parse(request_type, data, fmt)
                    tenant = request.scope.get("state", {}).get("tenant", DEFAULT_TENANT)
                    reply = await ingest.handle_durable(signal, message, data if fmt == decode.PROTOBUF else None,
                                                        tenant=tenant)
                finally:
                    limiter.leave()
                response = Response(decode.encode(reply, fmt), media_type=fmt)
            except ReceiveError as e:
                response = _status_response(e, fmt)
            metrics.requests.labels("http", signal, str(response.status_code)).inc()
            metrics.request_duration.labels("http").observe(time.perf_counter() - t0)
            return response

        return handle

    routes = [Route(f"/v1/{signal}", endpoint(signal), methods=["POST"]) for signal in REQUEST_TYPES]
    return Starlette(routes=routes)
