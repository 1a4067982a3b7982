"""Durations as users write them in rule files: Prometheus's ``1h30m``, ``5m``,
``500ms`` plus decimals (``1.5s``) for latency thresholds."""
from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "y": 31536000.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


class DurationError(ValueError):
    pass


def parse_duration(text, *, allow_fraction: bool = True) -> float:
    """Seconds in a duration string. Raises DurationError with a hint."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise DurationError(f"expected a duration like 500ms, 1.5s or 2m, got {text!r}")
    if isinstance(text, (int, float)):
        if text == 0:
            return 0.0
        raise DurationError(f"a duration needs a unit: write {text}s or {text}ms, not {text}")
    s = text.strip()
    if s == "0":
        return 0.0
    pos, total, seen = 0, 0.0, False
    for m in _PART.finditer(s):
        if m.start() != pos:
            break
        if "." in m.group(1) and not allow_fraction:
            raise DurationError(f"{text!r}: fractions are not allowed here, write e.g. 90s instead of 1.5m")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos, seen = m.end(), True
    if not seen or pos != len(s):
        raise DurationError(f"{text!r} is not a duration: write e.g. 500ms, 1.5s, 2m or 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """Shortest Prometheus-style form: 300 -> 5m, 0.5 -> 500ms, 5400 -> 1h30m."""
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


def is_finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))
