"""When groups run: on a grid of their interval, each group shifted by a stable
offset so that groups with the same interval do not all query at once
(Prometheus does the same, rules/group.go EvalTimestamp)."""
from __future__ import annotations

import hashlib
import math


def group_offset(name: str, interval: float) -> float:
    h = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big")
    ms = max(int(interval * 1000), 1)
    return (h % ms) / 1000.0


def eval_timestamp(now: float, interval: float, offset: float) -> float:
    """The latest grid point at or before ``now``."""
    return math.floor((now - offset) / interval) * interval + offset


def next_eval(now: float, interval: float, offset: float) -> float:
    t = eval_timestamp(now, interval, offset)
    return t if t >= now else t + interval
