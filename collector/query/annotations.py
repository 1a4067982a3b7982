"""Warnings and infos of one query, returned beside the result as Prometheus
does (the API's ``warnings`` / ``infos`` fields; Grafana shows them).

Evaluation code anywhere below the engine calls ``warn``/``info``; the engine
collects them per query with ``collect()``. Messages use Prometheus's wording
("PromQL warning: ...", "PromQL info: ...") so tools that match on them work."""
from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Notes:
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)

    def add(self, kind: str, msg: str) -> None:
        bucket = self.warnings if kind == "warning" else self.infos
        if msg not in bucket:
            bucket.append(msg)


_current: contextvars.ContextVar[Notes | None] = contextvars.ContextVar("promql_notes", default=None)


@contextmanager
def collect():
    notes = Notes()
    token = _current.set(notes)
    try:
        yield notes
    finally:
        _current.reset(token)


def warn(msg: str) -> None:
    n = _current.get()
    if n is not None:
        n.add("warning", "PromQL warning: " + msg)


def info(msg: str) -> None:
    n = _current.get()
    if n is not None:
        n.add("info", "PromQL info: " + msg)


def metric_suffix(labels: dict) -> str:
    name = labels.get("__name__", "")
    return f' for metric name "{name}"' if name else ""
