"""The PostgreSQL store: ``collector/store/base.Store`` on a database that several
Tocsin processes can share.

Writes: one transaction per flush. Histogram rows go in with binary COPY (the
stream built in numpy, codec.py) into a temporary table, then: rows for slots not
stored yet are inserted; rows for stored slots are merged with the stored ones
under row locks (read, merge with numpy, update), so two writers — two replicas,
or one process flushing an open slot twice — add up instead of overwriting
(docs/decisions.md has the measurements behind this choice). Series, float
samples, the alerting documents and the writer's WAL markers are written in the
same transaction, so WAL replay stays exactly-once.

Reads: one query per resolution (and per chunk of series) returns every column
concatenated in PostgreSQL's binary send format; numpy splits it.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import psycopg

from collector import cancel
from collector.aggregate.exemplars import dedupe as dedupe_exemplars
from collector.aggregate.merge import merge_rows
from collector.model import NS, ExemplarRows, HistRows, SampleRows, Series
from collector.store.base import Retention, StoreError, StoreUnavailable, WriteBatch, WriteOutcomeUnknown
from collector.store.coverage import coverage
from collector.store.postgres import codec, kv, migrate, partitions
from collector.store.postgres.connect import PgSettings, describe, first_connect, make_pool, one_line
from collector.store.postgres.queries import q

log = logging.getLogger(__name__)

DAY = 86_400
DEFAULT_RETENTION = Retention(by_res={10: 2 * DAY, 60: 30 * DAY, 3600: 400 * DAY}, samples=30 * DAY)
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ROWS_PER_READ = 250_000     # rows one read query may return (the aggregate stays far below 1 GB)
SERIES_PER_SAMPLE_READ = 10_000
BIG_BATCH = 20_000          # histogram rows above which a write sorts with more memory


def _dt(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)



@contextlib.contextmanager
def _cancellable(conn):
    """A read the query's token can stop: checked before, and cancelled on the
    server (PostgreSQL's cancel request) when the deadline passes while it runs."""
    cancel.check()
    try:
        with cancel.interrupts(conn.cancel_safe):
            yield
    except psycopg.errors.QueryCanceled:
        cancel.check()   # raises Cancelled: the token stopped it
        raise

class PostgresStore:
    def __init__(self, settings: PgSettings | str, retention: Retention = DEFAULT_RETENTION, writer: str = "",
                 wait_s: float = 0.0):
        self.settings = PgSettings(settings) if isinstance(settings, str) else settings
        self.retention = retention
        self.resolutions = tuple(sorted(retention.by_res))
        self.writer = writer
        self.where = describe(self.settings.dsn)
        conn = first_connect(self.settings, wait_s)
        try:
            self._check_schema(conn)
        finally:
            conn.close()
        try:
            self.pool = make_pool(self.settings)
        except Exception as e:
            raise StoreUnavailable(f"cannot open a connection pool to PostgreSQL at {self.where}: {one_line(e)}") from None
        self._parts: set[str] = set()
        self._parts_lock = threading.Lock()

    # -- schema ---------------------------------------------------------------
    def _check_schema(self, conn: psycopg.Connection) -> None:
        st = migrate.state(conn)
        if st.newer:
            if not st.usable:
                raise StoreError(
                    f"the database at {self.where} has schema revision {st.current}, newer than this tocsin "
                    f"understands (its newest is {st.head}) and no longer compatible with it (it needs code at "
                    f"{st.oldest_compatible} or newer); run a newer tocsin or restore a backup")
            log.warning("the database at %s has schema revision %s, newer than this tocsin's %s; it is compatible "
                        "(an expand migration), carrying on", self.where, st.current, st.head)
            return
        if not st.behind:
            return
        if self.settings.migrate == "check":
            at = f"schema revision {st.current}" if st.current else "no Tocsin schema yet"
            raise StoreError(f"the database at {self.where} has {at}; this tocsin needs {st.head}. Run "
                             f"`tocsin db upgrade` (or set storage.postgresql.migrate: auto)")
        try:
            before, after = migrate.upgrade(self.settings.dsn, self.settings.connect_kwargs())
        except psycopg.OperationalError as e:
            raise StoreUnavailable(f"migrating the database at {self.where} failed: {one_line(e)}") from None
        if before != after:
            log.info("PostgreSQL schema at %s upgraded from %s to %s", self.where, before or "empty", after)

    def schema_version(self) -> str | None:
        with self._conn() as conn:
            return migrate.state(conn).current

    # -- connections ----------------------------------------------------------
    @contextlib.contextmanager
    def _conn(self):
        """A pooled connection; connection failures become StoreUnavailable."""
        from psycopg_pool import PoolTimeout

        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as e:
            if isinstance(e, psycopg.errors.QueryCanceled):
                raise
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {one_line(e)}") from None

    def describe(self) -> str:
        return f"PostgreSQL at {self.where}"

    @contextlib.contextmanager
    def transaction(self):
        """A cursor in one transaction, committed when the block ends (rolled back on
        an exception): for work that must be atomic beyond one method, e.g. the
        cluster's fenced outbox claims (check the leader's epoch and claim entries
        with ``kv`` functions in the same transaction)."""
        with self._conn() as conn:
            with conn.transaction(), conn.cursor() as cur:
                yield cur

    # -- series ---------------------------------------------------------------
    def load_series(self) -> list[Series]:
        with self._conn() as conn:
            rows = conn.execute(q("load_series")).fetchall()
        return [Series(int(np.int64(sid).view(np.uint64)), metric, tuple(sorted(labels.items())), kind, unit, h)
                for sid, metric, labels, kind, unit, h in rows]

    # -- writing --------------------------------------------------------------
    def write(self, batch: WriteBatch, replace: bool = False) -> None:
        """``replace``: stored histogram rows of the same (series, res, slot) are
        replaced instead of merged into (``tocsin db copy``: running it twice
        leaves the same data)."""
        self._ensure_partitions(self._needed(batch))
        try:
            self._write(batch, replace)
        except psycopg.errors.CheckViolation as e:
            if "no partition" not in str(e):
                raise
            # another process dropped a partition we thought existed: look again, once
            with self._parts_lock:
                self._parts.clear()
            self._ensure_partitions(self._needed(batch))
            self._write(batch, replace)

    def _needed(self, batch: WriteBatch) -> set:
        return partitions.needed_for(batch.hist, batch.samples, batch.exemplars, self.resolutions[0])

    def _write(self, batch: WriteBatch, replace: bool = False) -> None:
        with self._conn() as conn:
            try:
                with conn.cursor() as cur:
                    if len(batch.hist) > BIG_BATCH:   # rollups, db copy: sort the batch in memory
                        cur.execute("SET LOCAL work_mem = '256MB'")
                    if batch.series:
                        self._write_series(cur, batch.series)
                    if len(batch.hist) and replace:
                        cur.execute(q("hist_temp"))
                        self._copy_hist(cur, merge_rows(batch.hist))
                        cur.execute(q("hist_replace"))
                    elif len(batch.hist):
                        self._upsert_hist(cur, merge_rows(batch.hist))
                    if len(batch.samples):
                        self._write_samples(cur, batch.samples)
                    if len(batch.exemplars):
                        self._write_exemplars(cur, batch.exemplars)
                    for namespace, items in batch.documents.items():
                        kv.put_many(cur, namespace, items)
                    if batch.wal_segment is not None:
                        cur.execute(q("set_wal_marker"), {"writer": self.writer, "name": "",
                                                          "segment": batch.wal_segment})
                    for name, seg in batch.wal_markers.items():
                        cur.execute(q("set_wal_marker"), {"writer": self.writer, "name": name, "segment": seg})
            except BaseException:
                conn.rollback()
                raise
            try:
                conn.commit()
            except psycopg.OperationalError as e:
                raise WriteOutcomeUnknown(f"PostgreSQL at {self.where}: the connection failed while committing "
                                          f"a flush ({one_line(e)})") from None

    def _write_series(self, cur, series: list[Series]) -> None:
        from psycopg.types.json import Jsonb

        cur.executemany(q("insert_series"), [
            {"series_id": int(np.uint64(s.id).view(np.int64)), "metric": s.metric, "labels": Jsonb(dict(s.labels)),
             "kind": s.kind, "unit": s.unit, "help": s.help} for s in series])

    def _copy_hist(self, cur, rows: HistRows) -> None:
        with cur.copy(q("hist_copy")) as cp:
            cp.write(codec.COPY_HEADER)
            cp.write(codec.hist_copy_rows(rows))
            cp.write(codec.COPY_TRAILER)

    def _upsert_hist(self, cur, rows: HistRows) -> None:
        cur.execute(q("hist_temp"))
        self._copy_hist(cur, rows)
        cur.execute(q("hist_insert_new"))
        cur.execute(q("hist_lock_existing"))
        stored = codec.hist_from_columns(*cur.fetchone())
        if not len(stored):
            return
        incoming = rows.take(np.nonzero(_keys_in(rows, stored))[0])
        merged = merge_rows(HistRows.concat([stored, incoming]))
        cur.execute(q("hist_clear_temp"))
        self._copy_hist(cur, merged)
        cur.execute(q("hist_update_merged"))

    def _write_samples(self, cur, samples: SampleRows) -> None:
        cur.execute(q("samples_temp"))
        with cur.copy(q("samples_copy")) as cp:
            cp.write(codec.samples_copy(codec.dedupe_samples(samples)))
        cur.execute(q("samples_upsert"))

    def _write_exemplars(self, cur, rows: ExemplarRows) -> None:
        """Merged in per (series, slot, octave): the slowest stays (exemplars.py)."""
        cur.execute(q("exemplars_temp"))
        with cur.copy(q("exemplars_copy")) as cp:
            cp.write(codec.exemplars_copy(dedupe_exemplars(rows)))
        cur.execute(q("exemplars_upsert"))

    def _ensure_partitions(self, needed: set[partitions.Part]) -> None:
        with self._parts_lock:
            missing = {p for p in needed if p.name not in self._parts}
        if not missing:
            return
        with self._conn() as conn:
            have = partitions.existing(conn)
            conn.commit()
            if {p.name for p in missing} - set(have):
                made = partitions.create(conn, missing)
                if made:
                    log.info("created partitions %s", ", ".join(made))
                have = partitions.existing(conn)
                conn.commit()
        with self._parts_lock:
            self._parts.update(have)

    def wal_marker(self, name: str | None = None) -> int:
        with self._conn() as conn:
            row = conn.execute(q("get_wal_marker"), {"writer": self.writer, "name": name or ""}).fetchone()
        return int(row[0]) if row else 0

    # -- reading --------------------------------------------------------------
    def _coverage(self, conn, coarsest: int | None) -> list[tuple[int, int, int]]:
        """(res, from_s, to_s) spans to read (collector/store/coverage.py)."""
        def watermark(res: int) -> int | None:
            row = conn.execute(q("get_meta"), {"key": f"rollup_{res}"}).fetchone()
            return int(row[0]) if row else None

        return coverage(self.resolutions, dict(conn.execute(q("coverage_state")).fetchall()), coarsest, watermark)

    def read_hist(self, series_ids: np.ndarray, start_ns: int, end_ns: int,
                  min_end_ns: int | None = None, coarsest_res: int | None = None, buckets: bool = True) -> HistRows:
        """As DuckDBStore.read_hist (``min_end_ns``, ``coarsest_res`` and ``buckets`` included)."""
        ids = codec.to_signed(np.unique(np.asarray(series_ids, dtype=np.uint64)))
        if not len(ids):
            return HistRows.empty()
        parts = []
        with self._conn() as conn:
            coverage = self._coverage(conn, coarsest_res)
            with conn.cursor(binary=True) as cur:
                for res, lo_s, hi_s in coverage:
                    a, b = max(start_ns, lo_s * NS), min(end_ns, hi_s * NS)
                    if min_end_ns is not None:
                        a = max(a, min_end_ns - res * NS + 1000)
                    if a >= b:
                        continue
                    slots = max(1, (b - a) // (res * NS) + 1)
                    per = max(1, ROWS_PER_READ // int(slots))
                    for i in range(0, len(ids), per):
                        with _cancellable(conn):
                            cur.execute(q("read_hist" if buckets else "read_hist_counts"),
                                        {"res": res, "lo": _dt(a + 999), "hi": _dt(b + 999),
                                         "ids": ids[i:i + per].tolist()})
                            rows = codec.hist_from_columns(*cur.fetchone())
                        cancel.charge(len(rows) + int(rows.offsets[-1]))   # bounds memory before the next read
                        parts.append(rows)
            conn.commit()
        return HistRows.concat(parts)

    def read_samples(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> SampleRows:
        ids = codec.to_signed(np.unique(np.asarray(series_ids, dtype=np.uint64)))
        parts = []
        with self._conn() as conn:
            with conn.cursor(binary=True) as cur:
                for i in range(0, len(ids), SERIES_PER_SAMPLE_READ):
                    with _cancellable(conn):
                        cur.execute(q("read_samples"), {"lo": _dt(start_ns + 999), "hi": _dt(end_ns),
                                                        "ids": ids[i:i + SERIES_PER_SAMPLE_READ].tolist()})
                        part = codec.samples_from_columns(*cur.fetchone())
                    cancel.charge(len(part))
                    parts.append(part)
            conn.commit()
        rows = SampleRows.concat(parts)
        if len(parts) > 1:
            order = np.lexsort((rows.ts, rows.series_id))
            rows = SampleRows(rows.series_id[order], rows.ts[order], rows.value[order])
        return rows

    def read_exemplars(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> ExemplarRows:
        """As DuckDBStore.read_exemplars (one row per series, slot and octave)."""
        ids = codec.to_signed(np.unique(np.asarray(series_ids, dtype=np.uint64)))
        if not len(ids):
            return ExemplarRows.empty()
        parts = []
        with self._conn() as conn:
            with conn.cursor(binary=True) as cur:
                for i in range(0, len(ids), SERIES_PER_SAMPLE_READ):
                    with _cancellable(conn):
                        cur.execute(q("read_exemplars"), {"lo": _dt(start_ns + 999), "hi": _dt(end_ns + 999),
                                                          "ids": ids[i:i + SERIES_PER_SAMPLE_READ].tolist()})
                        part = codec.exemplars_from_columns(*cur.fetchone())
                    cancel.charge(len(part))
                    parts.append(part)
            conn.commit()
        return ExemplarRows.concat(parts)

    # -- maintenance ----------------------------------------------------------
    def maintain(self, now_ns: int) -> dict[str, int]:
        """Create the coming partitions, roll up, drop expired partitions. One
        process at a time (a session advisory lock); the others skip."""
        from collector.store.postgres.maintain import maintain

        return maintain(self, now_ns)

    # -- small documents --------------------------------------------------------
    def kv_put(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        self.kv_put_many(namespace, {key: value})

    def kv_put_many(self, namespace: str, items: dict[str, dict[str, Any]]) -> None:
        if not items:
            return
        with self._conn() as conn, conn.cursor() as cur:
            kv.put_many(cur, namespace, items)

    def kv_put_new(self, namespace: str, key: str, value: dict[str, Any]) -> bool:
        """Write a document only if its key is new: True when this call wrote it
        (one of several replicas claims something once)."""
        with self._conn() as conn, conn.cursor() as cur:
            return kv.put_new(cur, namespace, key, value)

    def kv_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        with self._conn() as conn, conn.cursor() as cur:
            return kv.get(cur, namespace, key)

    def kv_list(self, namespace: str) -> dict[str, dict[str, Any]]:
        with self._conn() as conn, conn.cursor() as cur:
            return kv.list_all(cur, namespace)

    def kv_delete(self, namespace: str, key: str) -> None:
        with self._conn() as conn, conn.cursor() as cur:
            kv.delete(cur, namespace, key)

    def kv_apply(self, puts: dict[str, dict[str, dict[str, Any]]], deletes: dict[str, list[str]],
                 fence: int | None = None) -> None:
        """Puts and deletes in one transaction; with ``fence``, first checks that it
        is still the leader's epoch (raises ``Fenced``; see cluster.fence)."""
        from collector.store.postgres import cluster

        with self.transaction() as cur:
            if fence is not None:
                cluster.fence(cur, fence)
            kv.apply(cur, puts, deletes)

    @contextlib.contextmanager
    def kv_claim(self, namespace: str, key: str, fence: int, hold_s: float):
        """One document claimed for the rest of a transaction that also checks the
        leader's epoch: yields a ``cluster.Claim`` (state claimed / busy / gone,
        the value, ``apply(puts, deletes)`` to record the outcome), committed when
        the block ends. ``hold_s``: the server ends the transaction if this process
        stops (a frozen leader) and leaves it idle this long, so the entry frees."""
        from collector.store.postgres import cluster

        with self.transaction() as cur:
            yield cluster.claim(cur, namespace, key, fence, hold_s)

    def cluster(self):
        """The coordination tables of the cluster (``cluster.ClusterStore``)."""
        from collector.store.postgres.cluster import ClusterStore

        return ClusterStore(self)

    # -- misc -----------------------------------------------------------------
    def size_bytes(self) -> int:
        try:
            with self._conn() as conn:
                return int(conn.execute(q("size_bytes")).fetchone()[0])
        except StoreError:
            return 0

    def close(self) -> None:
        self.pool.close()


def _keys_in(rows: HistRows, stored: HistRows) -> np.ndarray:
    """Which of ``rows`` have a (series, res, slot) present in ``stored``."""
    def keys(r: HistRows) -> np.ndarray:
        k = np.empty(len(r), dtype=[("s", "<u8"), ("r", "<i4"), ("t", "<i8")])
        k["s"], k["r"], k["t"] = r.series_id, r.res, r.ts
        return k
    return np.isin(keys(rows), keys(stored))
