"""Values for people: SI prefixes like Prometheus' ``humanize``, durations like ``humanizeDuration``."""
from __future__ import annotations

import math
from datetime import datetime, timezone

_BIG = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
_SMALL = [(1e-3, "m"), (1e-6, "µ"), (1e-9, "n")]


def humanize(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    if math.isinf(v) or v == 0:
        return str(v) if v else "0"
    a = abs(v)
    if a >= 1:
        for size, p in _BIG:
            if a >= size:
                return f"{v / size:.4g}{p}"
        return f"{v:.4g}"
    for size, p in _SMALL:
        if a >= size:
            return f"{v / size:.4g}{p}"
    return f"{v:.4g}"


def humanize_duration(seconds: float) -> str:
    if math.isnan(seconds):
        return "n/a"
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    s = abs(seconds)
    if s < 1:
        return f"{sign}{s * 1000:.4g}ms" if s >= 1e-3 else f"{sign}{s * 1e6:.4g}µs"
    if s < 60:
        return f"{sign}{s:.4g}s"
    out, rest = [], int(round(s))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, rest = divmod(rest, size)
        if n:
            out.append(f"{n}{unit}")
    return sign + "".join(out)


def humanize_value(v: float, labels: dict[str, str], annotations: dict[str, str], unit: str = "") -> str:
    """A latency rule's value is in seconds (``unit``), and reads as a duration
    (``322.6ms``, never ``322.6m``); other rules may say their unit with a ``unit``
    annotation or label."""
    unit = unit or annotations.get("unit") or labels.get("unit") or ""
    if unit in ("s", "seconds"):
        return humanize_duration(v)
    return humanize(v) + (f" {unit}" if unit else "")


def alert_value(a) -> str:
    """``322.6ms``, and for a resolved alert ``322.6ms (worst 952.3ms)``."""
    text = humanize_value(a.value, a.labels, a.annotations, a.unit)
    if a.resolved and not math.isnan(a.worst) and a.worst != a.value:
        text += f" (worst {humanize_value(a.worst, a.labels, a.annotations, a.unit)})"
    return text


def utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "unknown"
