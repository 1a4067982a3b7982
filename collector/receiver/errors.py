"""Why a whole request was refused. Each error carries the HTTP status and the
gRPC status code the two transports answer with, and a reason a sender can act on."""
from __future__ import annotations

import grpc


class ReceiveError(Exception):
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT

    @property
    def reason(self) -> str:
        return str(self)


class BadRequest(ReceiveError):
    """The body cannot be decoded (bad protobuf, bad JSON, bad compression)."""


class TooLarge(ReceiveError):
    """The body, its decompressed form or its item count is over a limit."""
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnsupportedMediaType(ReceiveError):
    """Content-Type or Content-Encoding we do not speak."""
    http_status = 415
