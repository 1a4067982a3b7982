"""What extracting one request did, for the response and the self-metrics."""
from __future__ import annotations

from dataclasses import dataclass

from collector.aggregate.aggregator import RecordResult


@dataclass(frozen=True)
class Outcome:
    response: object          # Export*ServiceResponse
    signal: str               # "traces" | "metrics" | "logs"
    received: int
    result: RecordResult      # accepted / rejected with reasons; clamped values


def error_message(result: RecordResult, noun: str) -> str:
    """``"2 of 10 spans rejected: 1 end before start; 1 too old"``-style text."""
    return f"{result.rejected} {noun} rejected: {result.message()}"
