"""Kept for imports written before collector.durations existed; use collector.durations."""
from collector.durations import DurationError, format_duration, parse_duration  # noqa: F401
