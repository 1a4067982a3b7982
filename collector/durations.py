"""Durations as users write them (Prometheus style): ``500ms``, ``1.5s``, ``5m``,
``1h30m``, ``2d`` → seconds, and back. One parser for config, rules and
notifications, so a duration means the same everywhere."""
from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


class DurationError(ValueError):
    """Not a duration; the message shows how to write one."""


def parse_duration(value: object, *, numbers_are_seconds: bool = True, allow_fraction: bool = True) -> float:
    """Seconds in ``value``: a duration string, or (where ``numbers_are_seconds``)
    a plain number of seconds. Negative durations are refused."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DurationError(f"{value!r} is not a duration: write e.g. 500ms, 1.5s, 2m or 1h30m")
    if isinstance(value, (int, float)):
        if value == 0:
            return 0.0
        if not numbers_are_seconds:
            raise DurationError(f"a duration needs a unit: write {value}s or {value}ms, not {value}")
        if value < 0:
            raise DurationError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            break
        if "." in m.group(1) and not allow_fraction:
            raise DurationError(f"{value!r}: fractions are not allowed here, write e.g. 90s instead of 1.5m")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(text):
        raise DurationError(f"{value!r} is not a duration: write e.g. 500ms, 1.5s, 2m or 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """Shortest Prometheus-style form: 300 → 5m, 0.5 → 500ms, 5400 → 1h30m."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms" if ms < 60_000 else f"{seconds:g}s"
    out, rest = [], ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)
