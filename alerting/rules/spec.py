"""Rule files as written (after validation): frozen values, no behaviour."""
from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_LATENCY_METRIC = "traces_span_metrics_duration_seconds"
DEFAULT_INTERVAL = 60.0
NO_DATA_MODES = ("ok", "keep", "alert")


@dataclass(frozen=True)
class Pos:
    file: str
    line: int       # 1-based
    col: int        # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class LatencySpec:
    """The ``latency:`` short form of an alerting rule (seconds everywhere)."""
    above: float
    metric: str = DEFAULT_LATENCY_METRIC
    match: dict = field(default_factory=dict)
    by: tuple = ()
    quantile: float = 0.95
    window: float = 300.0
    warn_above: float | None = None
    recover_below: float | None = None
    min_count: int = 0
    no_data: str = "keep"


@dataclass(frozen=True)
class SloSpec:
    """The ``slo:`` short form: a latency objective over a period."""
    objective: float            # fraction, 0.995
    latency_below: float        # seconds
    period: float = 30 * 86400.0
    metric: str = DEFAULT_LATENCY_METRIC
    match: dict = field(default_factory=dict)
    by: tuple = ()


@dataclass(frozen=True)
class RuleSpec:
    kind: str                   # "alert" | "record"
    name: str
    expr: str = ""
    for_: float = 0.0
    keep_firing_for: float = 0.0
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)
    latency: LatencySpec | None = None
    slo: SloSpec | None = None
    pos: Pos | None = field(default=None, compare=False)
    expr_pos: Pos | None = field(default=None, compare=False)   # where the expr's text starts


@dataclass(frozen=True)
class GroupSpec:
    name: str
    file: str
    interval: float = DEFAULT_INTERVAL
    limit: int = 0
    labels: dict = field(default_factory=dict)
    rules: tuple = ()
    pos: Pos | None = field(default=None, compare=False)
