"""Query errors, each mapped to the Prometheus API error shape it answers with."""
from __future__ import annotations


class QueryError(Exception):
    status = 400
    error_type = "bad_data"


class BadData(QueryError):
    """The query cannot be parsed, or uses a construct Tocsin does not support."""


class Unprocessable(QueryError):
    """The query ran but cannot answer: too many samples or series, conflicting matches."""

    status = 422
    error_type = "execution"


class Timeout(QueryError):
    status = 503
    error_type = "timeout"


class Unavailable(QueryError):
    """Refused for now: too many queries, over the memory limit, or shutting down."""

    status = 503
    error_type = "unavailable"
