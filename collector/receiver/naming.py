"""OTLP names → Prometheus names, following the OpenTelemetry "Prometheus and
OpenMetrics compatibility" spec: dots and other invalid characters become
underscores, the unit becomes a suffix, counters end in ``_total``."""
from __future__ import annotations

import re
from functools import lru_cache

_INVALID_METRIC = re.compile(r"[^a-zA-Z0-9_:]")
_INVALID_LABEL = re.compile(r"[^a-zA-Z0-9_]")
_MULTI_UNDERSCORE = re.compile(r"__+")

# unit → (suffix, factor to the base unit). Time units are converted to seconds.
_UNITS: dict[str, tuple[str, float]] = {
    "s": ("seconds", 1.0), "ms": ("seconds", 1e-3), "us": ("seconds", 1e-6), "µs": ("seconds", 1e-6),
    "ns": ("seconds", 1e-9), "min": ("minutes", 1.0), "h": ("hours", 1.0), "d": ("days", 1.0),
    "By": ("bytes", 1.0), "KiBy": ("kibibytes", 1.0), "MiBy": ("mebibytes", 1.0), "GiBy": ("gibibytes", 1.0),
    "KBy": ("kilobytes", 1.0), "MBy": ("megabytes", 1.0), "GBy": ("gigabytes", 1.0),
    "bit": ("bits", 1.0), "m": ("meters", 1.0), "V": ("volts", 1.0), "A": ("amperes", 1.0),
    "J": ("joules", 1.0), "W": ("watts", 1.0), "g": ("grams", 1.0), "Cel": ("celsius", 1.0),
    "Hz": ("hertz", 1.0), "%": ("percent", 1.0),
}
_PER = {"s": "second", "m": "minute", "min": "minute", "h": "hour", "d": "day", "w": "week",
        "mo": "month", "y": "year"}


def label_name(key: str) -> str:
    """Attribute key → Prometheus label name (``http.route`` → ``http_route``)."""
    name = _INVALID_LABEL.sub("_", key)
    if name and name[0].isdigit():
        name = "key_" + name
    return name or "_"


def _unit_suffix(unit: str, gauge: bool) -> tuple[str, float]:
    unit = re.sub(r"\{[^}]*\}", "", unit).strip()   # annotations like {request} carry no unit
    if unit == "1":
        return ("ratio" if gauge else ""), 1.0
    if not unit:
        return "", 1.0
    if "/" in unit:
        num, _, den = unit.partition("/")
        n_suffix, _ = _UNITS.get(num, (num, 1.0)) if num else ("", 1.0)
        d_suffix = _PER.get(den, _UNITS.get(den, (den, 1.0))[0])
        return (f"{n_suffix}_per_{d_suffix}" if n_suffix else f"per_{d_suffix}"), 1.0
    return _UNITS.get(unit, (unit, 1.0))


@lru_cache(maxsize=4096)
def metric_name(name: str, unit: str, counter: bool, gauge: bool) -> tuple[str, float, str]:
    """Prometheus metric name, the factor that converts values to its unit, and
    the unit we store (``s`` when time was converted to seconds)."""
    suffix, factor = _unit_suffix(unit, gauge)
    base = _MULTI_UNDERSCORE.sub("_", _INVALID_METRIC.sub("_", name)).strip("_") or "_"
    if base[0].isdigit():
        base = "_" + base
    suffix = _MULTI_UNDERSCORE.sub("_", _INVALID_METRIC.sub("_", suffix)).strip("_")
    total = counter and base.endswith("_total")
    if total:
        base = base[: -len("_total")]
    if suffix and not base.endswith("_" + suffix) and base != suffix:
        base = f"{base}_{suffix}"
    if counter:
        base += "_total"
    stored_unit = "s" if suffix == "seconds" else unit
    return base, factor, stored_unit
