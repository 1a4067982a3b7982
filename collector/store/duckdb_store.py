"""The embedded DuckDB store (the default backend).

Layout: histogram slots and float samples live in time-partitioned tables
(``hist_<res>_<YYYYMMDD>``, ``samples_<YYYYMMDD>``), so retention drops whole
tables instead of scanning with DELETE. The ``latency`` view (the contract's
public face for analysts) and ``hist_all`` union them and are rebuilt when a
partition is added or dropped.
"""
from __future__ import annotations

import json
import logging
import os
import threading
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

import duckdb
from collector import cancel
from collector.aggregate.merge import merge_rows
from collector.model import NS, HistRows, SampleRows, Series
from collector.store import arrow_rows
from collector.store.base import Retention, StoreError, WriteBatch
from collector.store.coverage import coverage
from collector.store.duckdb_exemplars import ExemplarStore
from collector.store.duckdb_maintain import Maintenance
from collector.store.migrations import EXEMPLAR_COLUMNS, HIST_COLUMNS, MIGRATIONS, SAMPLE_COLUMNS, SCHEMA_VERSION

log = logging.getLogger(__name__)

DAY = 86_400
# How much time one partition table holds, per resolution (seconds). Short enough
# that sorting a closed one is cheap (an hour of 10 s slots), long enough to keep
# the number of tables small.
PARTITION_SPAN = {10: 3600, 60: DAY, 3600: 30 * DAY}
SAMPLES_SPAN = DAY
# Reads: series ids inlined in the SQL up to this many (registering an Arrow table of
# ids costs ~0.7 ms a query); partitions read in one statement while they can hold
# at most this many rows.
INLINE_IDS = 2000
READ_TOGETHER_ROWS = 200_000
DEFAULT_RETENTION = Retention(by_res={10: 2 * DAY, 60: 30 * DAY, 3600: 400 * DAY}, samples=30 * DAY)


def _fmt(ts_s: int, span: int) -> str:
    return datetime.fromtimestamp(ts_s, timezone.utc).strftime("%Y%m%d%H" if span < DAY else "%Y%m%d")


class DuckDBStore(Maintenance, ExemplarStore):
    def __init__(self, path: str, retention: Retention = DEFAULT_RETENTION, read_only: bool = False,
                 writer: str = ""):
        self.path = path
        self.writer = writer   # WAL markers are this writer's (see base.Store)
        self.retention = retention
        self.resolutions = tuple(sorted(retention.by_res))
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        try:
            self._con = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as e:
            raise StoreError(f"cannot open the store at {path}: {e}. Is another tocsin running on this file?") from e
        except duckdb.Error as e:
            raise StoreError(f"cannot open the store at {path}: {e}") from e
        # _lock serialises writers (flushes and each unit of maintenance) on the main
        # connection; readers only take _meta, for a snapshot of the partition map, and
        # the small documents have their own cursor and lock, so alert state, silences
        # and the outbox never wait for a flush or a rollup.
        self._lock = threading.RLock()
        self._meta = threading.Lock()
        self._kv_lock = threading.Lock()
        self._local = threading.local()
        try:
            self._migrate()
        except Exception:
            self._con.close()  # leave the file free for whoever handles the error
            raise
        self._parts: dict[str, tuple[str, int, int, int, bool]] = {}  # name -> (kind, res, start_s, end_s, sorted)
        for name, kind, res, start, end, is_sorted in self._con.execute(
                "SELECT name, kind, res, epoch(start_ts)::BIGINT, epoch(end_ts)::BIGINT, coalesce(sorted, false) "
                "FROM partitions").fetchall():
            self._parts[name] = (kind, res, start, end, is_sorted)
        self._wm = {res: self._watermark(res) for res in self.resolutions}
        self._rebuild_views()
        self._kv = self._con.cursor()

    # -- schema ---------------------------------------------------------------
    def _migrate(self) -> None:
        con = self._con
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        rows = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
        version = int(rows[0][0]) if rows else 0
        if version > SCHEMA_VERSION:
            raise StoreError(f"the store at {self.path} has schema version {version}, newer than this tocsin "
                             f"understands ({SCHEMA_VERSION}); run a newer tocsin or restore a backup")
        if version == 0:   # a new file: one line, not one per migration
            log.info("creating a new store at %s (schema version %d)", self.path, SCHEMA_VERSION)
        for v in range(version + 1, SCHEMA_VERSION + 1):
            if version:
                log.info("migrating store %s to schema version %d", self.path, v)
            con.execute("BEGIN TRANSACTION")
            try:
                MIGRATIONS[v](con)
                con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(v)])
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        return int(self._con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()[0][0])

    def _cursor(self):
        cur = getattr(self._local, "cur", None)
        if cur is None:
            cur = self._local.cur = self._con.cursor()
        return cur

    def _rebuild_views(self) -> None:
        hist = ["hist_empty"] + sorted(n for n, p in self._parts.items() if p[0] == "hist")
        union = " UNION ALL ".join(f"SELECT * FROM {n}" for n in hist)
        self._con.execute(f"CREATE OR REPLACE VIEW hist_all AS {union}")
        self._con.execute("""CREATE OR REPLACE VIEW latency AS
            SELECT h.ts, to_seconds(h.res) AS resolution, s.metric, s.labels, h.count,
                   h.sum, h.min, h.max, h.p50, h.p90, h.p95, h.p99
            FROM hist_all h JOIN series s USING (series_id)""")
        self._exemplar_views()

    def _partition(self, kind: str, res: int, ts_s: int) -> str:
        """The table holding ``ts_s``: an existing one (whatever span it was created
        with, so files from older versions keep their layout), else a new one."""
        for name, (k, r, start, end, _) in self._parts.items():
            if k == kind and r == res and start <= ts_s < end:
                return name
        span = SAMPLES_SPAN if kind == "samples" else PARTITION_SPAN[res]
        start = ts_s // span * span
        name = f"hist_{res}_{_fmt(start, span)}" if kind == "hist" else f"{kind}_{_fmt(start, span)}"
        cols = {"hist": HIST_COLUMNS, "samples": SAMPLE_COLUMNS, "exemplars": EXEMPLAR_COLUMNS}[kind]
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
        self._con.execute("INSERT OR REPLACE INTO partitions (name, kind, res, start_ts, end_ts, sorted) "
                          "VALUES (?, ?, ?, to_timestamp(?), to_timestamp(?), false)",
                          [name, kind, res, start, start + span])
        with self._meta:
            self._parts[name] = (kind, res, start, start + span, False)
        self._rebuild_views()
        return name

    # -- writing --------------------------------------------------------------
    def load_series(self) -> list[Series]:
        rows = self._con.execute("SELECT series_id, metric, map_keys(labels), map_values(labels), kind, "
                                 "coalesce(unit, ''), coalesce(help, '') FROM series").fetchall()
        return [Series(int(sid), m, tuple(sorted(zip(k, v))), kind, unit, h) for sid, m, k, v, kind, unit, h in rows]

    def write(self, batch: WriteBatch) -> None:
        with self._lock:
            self._con.execute("BEGIN TRANSACTION")
            try:
                if batch.series:
                    self._write_series(batch.series)
                if len(batch.hist):
                    self._write_hist(batch.hist)
                for namespace, items in batch.documents.items():
                    self._kv_put(self._con, namespace, items)
                if len(batch.samples):
                    self._write_samples(batch.samples)
                if len(batch.exemplars):
                    self._write_exemplars(batch.exemplars)
                if batch.wal_segment is not None:
                    self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                      [self._marker_key(None), str(batch.wal_segment)])
                for name, seg in batch.wal_markers.items():
                    self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [self._marker_key(name), str(seg)])
                self._con.execute("COMMIT")
            except Exception:
                self._con.execute("ROLLBACK")
                raise

    def _marker_key(self, name: str | None) -> str:
        """``wal_segment[:name]`` for the default writer (the keys files always had),
        ``wal_segment@writer[:name]`` for another."""
        key = "wal_segment" if not self.writer else f"wal_segment@{self.writer}"
        return key if name is None else f"{key}:{name}"

    def wal_marker(self, name: str | None = None) -> int:
        key = self._marker_key(name)
        with self._kv_lock:
            rows = self._kv.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
        return int(rows[0][0]) if rows else 0

    def _write_series(self, series: list[Series]) -> None:
        t = pa.table({
            "series_id": pa.array([s.id for s in series], type=pa.uint64()),
            "metric": pa.array([s.metric for s in series]),
            "labels": pa.array([list(s.labels) for s in series], type=pa.map_(pa.string(), pa.string())),
            "kind": pa.array([s.kind for s in series]),
            "unit": pa.array([s.unit for s in series]),
            "help": pa.array([s.help for s in series]),
        })
        self._con.register("_new_series", t)
        try:
            self._con.execute("INSERT INTO series (series_id, metric, labels, kind, unit, help) "
                              "SELECT * FROM _new_series ON CONFLICT DO NOTHING")
        finally:
            self._con.unregister("_new_series")

    def _write_hist(self, rows: HistRows) -> None:
        # One partition at a time; rows whose (series, slot) exists are merged in.
        res_ts = rows.ts // NS
        for res in np.unique(rows.res).tolist():
            sel_res = rows.res == res
            # group by target table (an old-layout table may span more than PARTITION_SPAN)
            parts = np.array([self._partition("hist", res, int(t)) for t in np.unique(res_ts[sel_res]).tolist()])
            _, where = np.unique(res_ts[sel_res], return_inverse=True)
            table_of_row = parts[where]
            idx_res = np.nonzero(sel_res)[0]
            for part in np.unique(table_of_row).tolist():
                self._upsert_hist(part, rows.take(idx_res[table_of_row == part]))

    def _upsert_hist(self, part: str, rows: HistRows) -> None:
        slots = np.unique(rows.ts)
        keys = pa.table({"series_id": pa.array(rows.series_id.astype(np.uint64)),
                         "ts": pa.array(rows.ts, type=pa.timestamp("ns"))})
        self._con.register("_keys", keys)
        try:
            existing = self._con.sql(
                f"SELECT p.series_id, epoch_ns(p.ts) AS ts, p.res, p.count, p.sum, p.min, p.max, p.idx, p.cnt, "
                f"p.bounds FROM {part} p SEMI JOIN _keys k ON p.series_id = k.series_id AND p.ts = k.ts::TIMESTAMP "
                f"WHERE p.ts >= make_timestamp({int(slots[0]) // 1000}) AND p.ts <= make_timestamp("
                f"{int(slots[-1]) // 1000})").to_arrow_table()
            if existing.num_rows:
                self._con.execute(f"DELETE FROM {part} USING _keys k WHERE {part}.series_id = k.series_id "
                                  f"AND {part}.ts = k.ts::TIMESTAMP")
                rows = merge_rows(HistRows.concat([arrow_rows.hist_from_arrow(existing), rows]))
        finally:
            self._con.unregister("_keys")
        self._insert(part, arrow_rows.hist_to_arrow(rows))

    def _write_samples(self, s: SampleRows) -> None:
        secs, where = np.unique(s.ts // NS // 60 * 60, return_inverse=True)  # tables never split a minute
        tables = np.array([self._partition("samples", 0, int(t)) for t in secs.tolist()])[where]
        for part in np.unique(tables).tolist():
            sel = tables == part
            self._insert(part, arrow_rows.samples_to_arrow(SampleRows(s.series_id[sel], s.ts[sel], s.value[sel])))

    def _insert(self, table: str, data: pa.Table) -> None:
        self._con.register("_batch", data)
        try:
            self._con.execute(f"INSERT INTO {table} SELECT * FROM _batch")
        finally:
            self._con.unregister("_batch")

    # -- reading --------------------------------------------------------------
    def _coverage(self, coarsest: int | None = None) -> list[tuple[int, int, int]]:
        """(res, from_s, to_s) spans to read (collector/store/coverage.py)."""
        lows: dict[int, int] = {}
        for p in self._parts.values():
            if p[0] == "hist":
                lows[p[1]] = min(lows.get(p[1], p[2]), p[2])
        return coverage(self.resolutions, lows, coarsest, self._wm.get)

    def read_hist(self, series_ids: np.ndarray, start_ns: int, end_ns: int,
                  min_end_ns: int | None = None, coarsest_res: int | None = None, buckets: bool = True) -> HistRows:
        """With ``min_end_ns``, rows whose slot ends at or before it may be left out:
        the start bound is tightened per resolution (a 10 s row cannot end an hour
        after it started), so a query over a short window scans only that window.
        With ``coarsest_res``, rolled-up rows up to that resolution are preferred
        (see ``_coverage``). With ``buckets`` false the rows come without their
        buckets (count and sum only: the bucket lists are most of what is read)."""
        ids_np = np.asarray(series_ids, dtype=np.uint64)
        with self._meta:
            coverage = self._coverage(coarsest_res)
            tables = dict(self._parts)
        pieces = []   # (table, from_ns, to_ns, res)
        for res, lo_s, hi_s in coverage:
            a, b = max(start_ns, lo_s * NS), min(end_ns, hi_s * NS)
            if min_end_ns is not None:
                a = max(a, min_end_ns - res * NS + 1000)   # TIMESTAMP holds µs
            if a >= b:
                continue
            names = [n for n, p in tables.items() if p[0] == "hist" and p[1] == res
                     and p[3] * NS > a and p[2] * NS < b]
            pieces += [(name, a, b, res) for name in sorted(names)]
        # Partitions are read together while the rows they can hold stay few (one
        # round trip for a short window); a long read goes partition by partition,
        # charging the token after each, so a budget stops it before the next.
        groups, cur_group, cur_rows = [], [], 0
        for piece in pieces:
            rows = len(ids_np) * max(1, (piece[2] - piece[1]) // (piece[3] * NS))
            if cur_group and cur_rows + rows > READ_TOGETHER_ROWS:
                groups.append(cur_group)
                cur_group, cur_rows = [], 0
            cur_group.append(piece)
            cur_rows += rows
        if cur_group:
            groups.append(cur_group)
        parts = []
        for group in groups:
            parts.append(self._read_hist_group(group, ids_np, buckets))
        return HistRows.concat(parts)

    def _read_hist_group(self, group: list[tuple[str, int, int, int]], ids_np: np.ndarray,
                         buckets: bool = True) -> HistRows:
        cur = self._cursor()
        inline = len(ids_np) <= INLINE_IDS
        where_ids = ("series_id IN (" + ",".join(map(str, ids_np.tolist())) + ")") if inline \
            else "series_id IN (SELECT id FROM _ids)"
        cols = "idx, cnt, bounds" if buckets else "NULL::INTEGER[] AS idx, NULL::UBIGINT[] AS cnt, NULL::DOUBLE[] AS bounds"
        sql = " UNION ALL ".join(
            f"SELECT series_id, epoch_ns(ts) AS ts, res, count, sum, min, max, {cols} FROM {name} "
            f"WHERE ts >= make_timestamp({a // 1000}) AND ts < make_timestamp({b // 1000}) AND {where_ids}"
            for name, a, b, _res in group)
        cancel.check()
        if not inline:
            cur.register("_ids", pa.table({"id": pa.array(ids_np)}))
        try:
            with cancel.interrupts(cur.interrupt):
                t = cur.sql(sql).to_arrow_table()
        except duckdb.InterruptException:
            cancel.check()   # raises Cancelled: the token interrupted the read
            raise
        finally:
            if not inline:
                cur.unregister("_ids")
        rows = arrow_rows.hist_from_arrow(t)
        cancel.charge(len(rows) + int(rows.offsets[-1]))   # bounds memory: stop before the next read
        return rows

    def read_samples(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> SampleRows:
        t = self._read_partitions("samples", series_ids, start_ns, end_ns, "series_id, epoch_ns(ts) AS ts, value",
                                  end_inclusive=True, order="series_id, ts")
        return SampleRows.empty() if t is None else arrow_rows.samples_from_arrow(t)

    def _read_partitions(self, kind: str, series_ids: np.ndarray, start_ns: int, end_ns: int, columns: str,
                         end_inclusive: bool = False, order: str = "") -> pa.Table | None:
        """The rows of ``series_ids`` with ``ts`` in [start, end) (``end_inclusive``: [start, end])
        from the ``kind`` partitions that overlap it, in one statement the running query's token
        can interrupt; None when no partition overlaps or no series is asked for."""
        ids = np.asarray(series_ids, dtype=np.uint64)
        with self._meta:
            names = sorted(n for n, p in self._parts.items() if p[0] == kind and p[3] * NS > start_ns
                           and (p[2] * NS <= end_ns if end_inclusive else p[2] * NS < end_ns))
        if not names or not len(ids):
            return None
        cur = self._cursor()
        union = " UNION ALL ".join(f"SELECT * FROM {n}" for n in names)
        cancel.check()
        cur.register("_ids", pa.table({"id": pa.array(ids)}))
        try:
            with cancel.interrupts(cur.interrupt):
                t = cur.sql(f"SELECT {columns} FROM ({union}) WHERE ts >= make_timestamp({start_ns // 1000}) "
                            f"AND ts {'<=' if end_inclusive else '<'} make_timestamp({end_ns // 1000}) "
                            f"AND series_id IN (SELECT id FROM _ids)"
                            + (f" ORDER BY {order}" if order else "")).to_arrow_table()
        except duckdb.InterruptException:
            cancel.check()   # raises Cancelled: the token interrupted the read
            raise
        finally:
            cur.unregister("_ids")
        cancel.charge(t.num_rows)
        return t

    # -- small documents --------------------------------------------------------
    def kv_put(self, namespace: str, key: str, value: dict[str, Any]) -> None:
        self.kv_put_many(namespace, {key: value})

    def kv_put_many(self, namespace: str, items: dict[str, dict[str, Any]]) -> None:
        with self._kv_lock:
            self._kv_put(self._kv, namespace, items)

    @staticmethod
    def _kv_put(con, namespace: str, items: dict[str, dict[str, Any]]) -> None:
        if not items:
            return
        t = pa.table({"namespace": [namespace] * len(items), "key": list(items),
                      "value": [json.dumps(v, sort_keys=True) for v in items.values()]})
        con.register("_kv", t)
        try:
            con.execute("INSERT OR REPLACE INTO kv (namespace, key, value) SELECT * FROM _kv")
        finally:
            con.unregister("_kv")

    def kv_apply(self, puts: dict[str, dict[str, dict[str, Any]]], deletes: dict[str, list[str]],
                 fence: int | None = None) -> None:
        """Puts and deletes in one transaction (base.Store.kv_apply). One process
        owns a DuckDB file, so there is no leader to fence."""
        if fence is not None:
            raise StoreError("a fenced write needs the PostgreSQL cluster (cluster.enabled)")
        with self._kv_lock:
            self._kv.execute("BEGIN")
            try:
                for namespace, items in puts.items():
                    self._kv_put(self._kv, namespace, items)
                for namespace, keys in deletes.items():
                    for key in keys:
                        self._kv.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", [namespace, key])
                self._kv.execute("COMMIT")
            except BaseException:
                self._kv.execute("ROLLBACK")
                raise

    def kv_get(self, namespace: str, key: str) -> dict[str, Any] | None:
        with self._kv_lock:
            rows = self._kv.execute("SELECT value FROM kv WHERE namespace = ? AND key = ?",
                                    [namespace, key]).fetchall()
        return json.loads(rows[0][0]) if rows else None

    def kv_list(self, namespace: str) -> dict[str, dict[str, Any]]:
        with self._kv_lock:
            rows = self._kv.execute("SELECT key, value FROM kv WHERE namespace = ?", [namespace]).fetchall()
        return {k: json.loads(v) for k, v in rows}

    def kv_delete(self, namespace: str, key: str) -> None:
        with self._kv_lock:
            self._kv.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", [namespace, key])

    # -- misc -----------------------------------------------------------------
    def size_bytes(self) -> int:
        if self.path == ":memory:":
            return 0
        try:
            return os.path.getsize(self.path) + (os.path.getsize(self.path + ".wal")
                                                 if os.path.exists(self.path + ".wal") else 0)
        except OSError:
            return 0

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def checkpoint(self) -> None:
        with self._lock:
            self._con.execute("CHECKPOINT")

    def close(self) -> None:
        with self._lock, self._kv_lock:
            try:
                self._con.execute("CHECKPOINT")
            except duckdb.Error:
                pass
            self._con.close()
