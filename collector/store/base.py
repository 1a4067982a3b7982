"""The store seam: everything Tocsin keeps on disk goes through this interface.

Only ``collector/store`` imports a database driver. DuckDB (``duckdb_store``) is
the embedded default; PostgreSQL (``postgres/``), which several collectors can
share, implements the same methods. ``collector.assemble.open_store`` picks one
from the config.

A store is opened with a writer id (default ""): the WAL markers it writes and
reads are that writer's, so several processes (replicas) each with their own
write-ahead log can share one store.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from collector.model import ExemplarRows, HistRows, SampleRows, Series


@dataclass(frozen=True)
class WriteBatch:
    """What one flush writes, atomically: series first seen, closed histogram
    slots (rows of ``res`` seconds, one row per series per slot), float samples."""

    series: list[Series] = field(default_factory=list)
    hist: HistRows = field(default_factory=HistRows.empty)
    samples: SampleRows = field(default_factory=SampleRows.empty)
    documents: dict[str, dict[str, dict]] = field(default_factory=dict)  # kv namespace -> key -> document
    wal_segment: int | None = None  # every WAL segment up to this one is in the batch (or earlier ones)
    # the same for other WALs (receiver worker processes): name -> segment
    wal_markers: dict[str, int] = field(default_factory=dict)
    # exemplars of the slots in the batch (and of open slots): stores merge them per
    # (series, slot, octave), keeping the larger value (collector/aggregate/exemplars.py)
    exemplars: ExemplarRows = field(default_factory=ExemplarRows.empty)


@dataclass(frozen=True)
class Retention:
    """How long each resolution is kept, in seconds; slots of ``res`` seconds are
    rolled up into the next resolution once they are older than ``rollup_after``."""

    by_res: dict[int, int]          # {10: 2 days, 60: 30 days, 3600: 400 days}
    samples: int                    # float samples
    rollup_after: int = 120


class StoreError(Exception):
    """A store that cannot be opened or used; the message says what to do."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now (PostgreSQL down or unreachable); retrying
    later may succeed. Nothing of the failed call was written."""


class WriteOutcomeUnknown(StoreUnavailable):
    """The connection failed while a write was committing: it may or may not be
    stored. Compare ``wal_marker()`` with the batch's segment once the store is
    back before writing the batch again."""


class Fenced(StoreError):
    """A cluster write refused because the writer is no longer the leader: the
    fencing epoch it holds is not the one in the store (another replica took over).
    Nothing of the refused transaction was written."""


class Store(Protocol):
    resolutions: tuple[int, ...]

    def load_series(self) -> list[Series]: ...

    def write(self, batch: WriteBatch) -> None:
        """Persist a batch. Histogram rows whose (series, slot) already exists are
        merged into it, so late data and repeated flushes never double a row."""

    def wal_marker(self, name: str | None = None) -> int:
        """The last write-ahead-log segment of this store's writer whose data the
        store holds (0: none); ``name``: that of another WAL of the same writer
        (``WriteBatch.wal_markers``)."""

    def read_hist(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> HistRows:
        """Rows of the given series whose slot starts in [start_ns, end_ns), each
        time taken from the finest resolution that still holds it; no two rows
        cover the same time."""

    def read_samples(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> SampleRows:
        """Float samples with ts in [start_ns, end_ns], sorted by series then ts."""

    def read_exemplars(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> ExemplarRows:
        """Exemplars of the given series in slots starting in [start_ns, end_ns),
        one per (series, slot, octave) (``exemplars.dedupe``). Kept as long as the
        slot-resolution rows; rollups carry none."""

    def maintain(self, now_ns: int) -> dict[str, int]:
        """Roll up closed slots and drop expired data; returns counts of what it did."""

    # Small documents for the alerting side (alert state, notification log,
    # outbox, silences). Values are JSON-serialisable dicts.
    def kv_put(self, namespace: str, key: str, value: dict[str, Any]) -> None: ...
    def kv_put_many(self, namespace: str, items: dict[str, dict[str, Any]]) -> None: ...
    def kv_get(self, namespace: str, key: str) -> dict[str, Any] | None: ...
    def kv_list(self, namespace: str) -> dict[str, dict[str, Any]]: ...
    def kv_delete(self, namespace: str, key: str) -> None: ...
    def kv_apply(self, puts: dict[str, dict[str, dict[str, Any]]], deletes: dict[str, list[str]],
                 fence: int | None = None) -> None:
        """Puts (namespace -> key -> document) and deletes (namespace -> keys) in
        one transaction: all or nothing. ``fence``: the writer's leader epoch; the
        transaction is refused (``Fenced``) unless it is the store's current one
        (PostgreSQL cluster only)."""

    def size_bytes(self) -> int: ...
    def describe(self) -> str:
        """Where the store is, for logs and errors (never a password)."""
    def close(self) -> None: ...


def apply_documents(store, puts: dict[str, dict[str, dict[str, Any]]], deletes: dict[str, list[str]],
                    fence: int | None = None) -> None:
    """``store.kv_apply`` (one transaction); a store without it (a test double)
    gets the same writes one by one."""
    if hasattr(store, "kv_apply"):
        store.kv_apply(puts, deletes, fence=fence)
        return
    if fence is not None:
        raise StoreError("this store cannot fence writes")
    for namespace, items in puts.items():
        store.kv_put_many(namespace, items)
    for namespace, keys in deletes.items():
        for key in keys:
            store.kv_delete(namespace, key)
