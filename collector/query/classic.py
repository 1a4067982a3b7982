"""Classic ``_bucket`` series of every histogram, for dashboards and rules written
for Prometheus's classic histograms:
``histogram_quantile(0.95, sum by (le) (rate(traces_span_metrics_duration_seconds_bucket[5m])))``.

For a histogram series ``X`` the engine also exposes ``X_bucket{le="…"}``: the
cumulative count of observations up to ``le``, a counter backed by the same rows
as ``X_count`` (so ``rate``/``increase`` are exact over whole slots), with
``le="+Inf"`` equal to ``X_count``.

* HDR histograms (spans, OTLP exponential, remote-write native) at the bounds of
  ``query.classic_buckets`` (default: the OpenTelemetry span-metrics connector's,
  2 ms … 15 s). No interpolation: every HDR bucket (at most 0.8 % wide) counts
  whole, under ``le`` when its middle — the value Tocsin reports for it — is at
  most ``le``. So a classic bucket boundary is as precise as the HDR layout; the
  native form (``histogram_quantile`` over ``X``) is the accurate one.
* Explicit-bucket histograms (OTLP) at the sender's own bounds, exactly. They are
  only known from the rows, so such a selector is expanded after its rows are read.

Nothing is stored for this: the index knows only the histograms, and a selector
naming ``X_bucket`` is expanded here (``le`` matchers are applied to the bounds).
``le`` values are written as Prometheus 3 normalises them (``0.002``, ``1.0``, ``+Inf``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from collector.aggregate import hdr
from collector.model import KIND_CUSTOM, HistRows
from collector.query.selectors import FLOAT, HIST, Exposed, SeriesIndex, matcher_fn

SUFFIX = "_bucket"
BUCKET = "bucket:"          # access prefix: "bucket:<le>", a cumulative count up to le
FAMILY = "bucket-family"    # access of an explicit-bucket histogram's _bucket series before its rows are read
# The OpenTelemetry Collector span-metrics connector's defaults (defaultHistogramBucketsMs), in seconds.
DEFAULT_BOUNDS = (0.002, 0.004, 0.006, 0.008, 0.01, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.4, 2.0, 5.0, 10.0, 15.0)

Matchers = list[tuple[str, str, str]]


def format_le(b: float) -> str:
    """Prometheus 3's form of a bound: shortest round-trip digits, ``.0`` on integers, ``+Inf``."""
    if math.isinf(b):
        return "+Inf" if b > 0 else "-Inf"
    return repr(float(b))


def parse_le(text: str) -> float:
    return float(text)


def is_bucket(access: str) -> bool:
    return access.startswith(BUCKET)


def le_of(access: str) -> float:
    return parse_le(access[len(BUCKET):])


@dataclass(frozen=True)
class _Family(Exposed):
    """An explicit-bucket histogram's ``_bucket`` series, bounds not known yet."""

    le_matchers: tuple = ()


def _with(labels, name: str, le: str | None) -> tuple:
    out = [(k, v) for k, v in labels if k != "__name__"] + [("__name__", name)]
    if le is not None:
        out.append(("le", le))
    return tuple(sorted(out))


class ClassicBuckets:
    def __init__(self, bounds=DEFAULT_BOUNDS):
        b = sorted({float(x) for x in bounds if math.isfinite(float(x))})
        self.bounds = tuple(b) + (math.inf,)
        self.le_texts = tuple(format_le(x) for x in self.bounds)

    # -- selection --------------------------------------------------------------------------
    def select(self, index: SeriesIndex, sets: list[Matchers]) -> list[Exposed]:
        """``index.match`` plus the ``_bucket`` series of histograms: HDR ones at the
        configured bounds, explicit-bucket ones as families (``expand`` them once read)."""
        out: dict[tuple, Exposed] = {}
        for ms in sets:
            for e in index.match([ms]):
                out[e.labels] = e
            for e in self._families(index, ms):
                key = e.labels if not isinstance(e, _Family) else e.labels + (("", "family"),)
                prev = out.get(key)
                if isinstance(prev, _Family) and isinstance(e, _Family):   # two sets: either's le matchers
                    e = _Family(e.name, e.labels, e.sid, e.access, e.kind, e.unit, e.help,
                                prev.le_matchers + e.le_matchers)
                out[key] = e
        return [out[k] for k in sorted(out)]

    def _families(self, index: SeriesIndex, ms: Matchers) -> list[Exposed]:
        names = [m for m in ms if m[0] == "__name__"]
        les = [m for m in ms if m[0] == "le"]
        rest = [m for m in ms if m[0] not in ("__name__", "le")]
        if not names:
            return []   # `{le="…"}` alone names no bucket series here (as no name is given)
        eq = [v for _, op, v in names if op == "="]
        if eq:
            if not eq[0].endswith(SUFFIX):
                return []
            base = index.match([rest + [("__name__", "=", eq[0][:-len(SUFFIX)])]])
        else:
            base = index.match([rest]) if rest else index.all()
        name_ok = [matcher_fn(op, v) for _, op, v in names]
        le_ok = [matcher_fn(op, v) for _, op, v in les]
        out: list[Exposed] = []
        for e in base:
            if e.access != HIST:
                continue
            name = e.name + SUFFIX
            if not all(f(name) for f in name_ok):
                continue
            if e.kind == KIND_CUSTOM:
                out.append(_Family(name, _with(e.labels, name, None), e.sid, FAMILY, e.kind, "", e.help,
                                   (tuple(les),)))
                continue
            for le in self.le_texts:
                if all(f(le) for f in le_ok):
                    out.append(Exposed(name, _with(e.labels, name, le), e.sid, BUCKET + le, e.kind, "", e.help))
        return out

    @staticmethod
    def expand(sel: list[Exposed], hrows: dict) -> list[Exposed]:
        """Families replaced by one series per bound their rows have (the union over
        the rows read), ``le`` matchers applied. Other entries pass through."""
        if not any(isinstance(e, _Family) for e in sel):
            return sel
        out = []
        for e in sel:
            if not isinstance(e, _Family):
                out.append(e)
                continue
            rows = hrows.get(e.sid)
            if rows is None or not len(rows):
                continue
            bounds = sorted({b for r in (rows.bounds or ()) if r is not None for b in r} | {math.inf})
            for b in bounds:
                le = format_le(b)
                # any of the selector's sets (each a list of le matchers) accepting this le
                if any(all(matcher_fn(op, v)(le) for _, op, v in les) for les in e.le_matchers):
                    out.append(Exposed(e.name, _with(e.labels, e.name, le), e.sid, BUCKET + le, e.kind, "", e.help))
        return out

    def listed(self, index: SeriesIndex, sets: list[Matchers]) -> list[Exposed]:
        """The ``_bucket`` series that ``match[]`` sets select, for the metadata
        endpoints (series, labels, label values): HDR ones at the configured bounds;
        explicit-bucket ones are left out (their bounds are only known from their rows)."""
        seen: dict[tuple, Exposed] = {}
        for ms in sets:
            for e in self._families(index, ms):
                if not isinstance(e, _Family):
                    seen[e.labels] = e
        return [seen[k] for k in sorted(seen)]

    def summary(self, index: SeriesIndex) -> list[Exposed]:
        """For listings without ``match[]`` (metric names, label names and values): one
        entry per histogram name and bound, carrying only ``__name__`` and ``le``."""
        names: dict[str, bool] = {}
        for e in index.all():
            if e.access == HIST:
                names[e.name + SUFFIX] = names.get(e.name + SUFFIX, False) or e.kind != KIND_CUSTOM
        out = []
        for name, hdr_backed in sorted(names.items()):
            for le in self.le_texts if hdr_backed else (None,):
                out.append(Exposed(name, _with((), name, le), 0, BUCKET + (le or "+Inf"), "", "", ""))
        return out


# -- counting -------------------------------------------------------------------------------
def counts_le(rows: HistRows, le: float) -> np.ndarray:
    """Per row, the observations up to ``le``: for HDR rows the buckets whose middle is
    at most ``le``, for explicit-bucket rows the buckets whose bound is at most ``le``."""
    n = len(rows)
    if math.isinf(le) and le > 0:
        return rows.count.astype(np.float64)
    if n == 0:
        return np.zeros(0)
    row_of = np.repeat(np.arange(n), np.diff(rows.offsets))
    upper = hdr.mid_seconds(rows.idx)
    if rows.bounds:
        upper = upper.astype(np.float64, copy=True)
        for i, b in enumerate(rows.bounds):
            if b is not None:
                a, e = int(rows.offsets[i]), int(rows.offsets[i + 1])
                ub = np.array(list(b) + [math.inf])
                upper[a:e] = ub[rows.idx[a:e]]
    below = upper <= le
    return np.bincount(row_of[below], weights=rows.cnt[below].astype(np.float64), minlength=n)


def only_series(sel: list[Exposed]) -> list[Exposed]:
    """Entries that name stored data (families resolved or dropped), for listings."""
    return [e for e in sel if not isinstance(e, _Family) and e.access != FAMILY]


__all__ = ["ClassicBuckets", "DEFAULT_BOUNDS", "counts_le", "format_le", "is_bucket", "le_of", "FLOAT"]
