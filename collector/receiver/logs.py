"""Logs are accepted (so an SDK configured for all signals does not fail) and
counted, not stored."""
from __future__ import annotations

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from collector.aggregate.aggregator import RecordResult
from collector.receiver.errors import TooLarge
from collector.receiver.outcome import Outcome
from collector.receiver.settings import ReceiverSettings


def extract_logs(request, settings: ReceiverSettings) -> Outcome:
    n = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    if n > settings.max_items_per_request:
        raise TooLarge(f"request has {n} log records, limit {settings.max_items_per_request}")
    return Outcome(ExportLogsServiceResponse(), "logs", n, RecordResult(accepted=n))
