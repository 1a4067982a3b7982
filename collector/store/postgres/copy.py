"""``tocsin db copy --from FILE``: move a DuckDB store into PostgreSQL.

Series, histogram rows of every resolution, float samples, the alerting
documents (alert state, notification log, outbox, silences) and the receivers'
temporality state are copied; so are the rollup watermarks when PostgreSQL has
none yet. Idempotent: series are inserted if missing, histogram rows replace
the stored row of the same (series, resolution, slot), samples and documents
overwrite theirs — running it twice leaves the same data. A count check compares
both sides at the end.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from collector.model import Series
from collector.store import arrow_rows
from collector.store.base import StoreError, WriteBatch
from collector.store.migrations import SCHEMA_VERSION as DUCKDB_SCHEMA
from collector.store.postgres import codec, kv
from collector.store.postgres.queries import q

log = logging.getLogger(__name__)
BATCH_ROWS = 50_000


@dataclass
class Check:
    what: str
    duckdb: int
    postgresql: int

    @property
    def ok(self) -> bool:
        return self.duckdb == self.postgresql


@dataclass
class CopyReport:
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def open_duckdb(path: str):
    if not os.path.exists(path):
        raise StoreError(f"{path}: no such DuckDB file")
    try:
        con = duckdb.connect(path, read_only=True)
    except duckdb.IOException as e:
        raise StoreError(f"cannot open {path}: {e}. Stop the tocsin using it first (or copy a copy of the file)") \
            from None
    except duckdb.Error as e:
        raise StoreError(f"cannot open {path}: {e}") from None
    try:
        version = int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()[0][0])
    except (duckdb.Error, IndexError):
        con.close()
        raise StoreError(f"{path} is not a Tocsin DuckDB store (no schema version)") from None
    if version > DUCKDB_SCHEMA:
        con.close()
        raise StoreError(f"{path} has schema version {version}, newer than this tocsin understands "
                         f"({DUCKDB_SCHEMA}); run a newer tocsin")
    return con


def _unreplayed_wal(con, path: str) -> str | None:
    wal = Path(path + "-wal")
    if not wal.is_dir():
        return None
    rows = con.execute("SELECT value FROM meta WHERE key = 'wal_segment'").fetchall()
    marker = int(rows[0][0]) if rows else 0
    pending = [p for p in wal.glob("*.wal") if p.stem.isdigit() and int(p.stem) > marker and p.stat().st_size > 0]
    if pending:
        return (f"{wal} holds {len(pending)} write-ahead log segment(s) not yet in {path} (tocsin did not stop "
                f"cleanly): start tocsin on the DuckDB file once and stop it, then copy again to include them")
    return None


def _series(con) -> list[Series]:
    rows = con.execute("SELECT series_id, metric, map_keys(labels), map_values(labels), kind, coalesce(unit, ''), "
                       "coalesce(help, '') FROM series").fetchall()
    return [Series(int(sid), m, tuple(sorted(zip(k, v))), kind, unit, h) for sid, m, k, v, kind, unit, h in rows]


def _parts(con, kind: str) -> list[tuple[str, int]]:
    return con.execute("SELECT name, res FROM partitions WHERE kind = ? ORDER BY res, start_ts",
                       [kind]).fetchall()


def copy_from_duckdb(path: str, store, progress: bool = True) -> CopyReport:
    """Copy the DuckDB store at ``path`` into ``store`` (a PostgresStore)."""
    from tqdm import tqdm

    report = CopyReport()
    con = open_duckdb(path)
    try:
        warning = _unreplayed_wal(con, path)
        if warning:
            report.warnings.append(warning)
        series = _series(con)
        hist_parts, sample_parts = _parts(con, "hist"), _parts(con, "samples")
        total = sum(con.execute(f"SELECT count(*) FROM {n}").fetchall()[0][0] for n, _ in hist_parts + sample_parts)
        namespaces = [r[0] for r in con.execute("SELECT DISTINCT namespace FROM kv ORDER BY 1").fetchall()]
        bar = tqdm(total=total, unit="rows", unit_scale=True, desc="copying", disable=None if progress else True)
        try:
            store.write(WriteBatch(series=series))
            for name, _res in hist_parts:
                reader = con.sql(f"SELECT series_id, epoch_ns(ts) AS ts, res, count, sum, min, max, idx, cnt, "
                                 f"bounds FROM {name}").fetch_arrow_reader(BATCH_ROWS)
                for rb in reader:
                    rows = arrow_rows.hist_from_arrow(pa.Table.from_batches([rb]))
                    store.write(WriteBatch(hist=rows), replace=True)
                    bar.update(len(rows))
            for name, _ in sample_parts:
                reader = con.sql(f"SELECT series_id, epoch_ns(ts) AS ts, value FROM {name}"
                                 ).fetch_arrow_reader(BATCH_ROWS)
                for rb in reader:
                    rows = arrow_rows.samples_from_arrow(pa.Table.from_batches([rb]))
                    store.write(WriteBatch(samples=rows))
                    bar.update(len(rows))
            for name, _ in _parts(con, "exemplars"):   # merged per (series, slot, octave): idempotent too
                reader = con.sql(f"SELECT series_id, epoch_ns(ts) AS ts, grp, epoch_ns(observed_at) AS at, value, "
                                 f"trace_id, span_id FROM {name}").fetch_arrow_reader(BATCH_ROWS)
                for rb in reader:
                    rows = arrow_rows.exemplars_from_arrow(pa.Table.from_batches([rb]))
                    store.write(WriteBatch(exemplars=rows))
            for ns in namespaces:
                items = {k: json.loads(v) for k, v in con.execute(
                    "SELECT key, value FROM kv WHERE namespace = ?", [ns]).fetchall()}
                store.kv_put_many(ns, items)
        finally:
            bar.close()
        _copy_watermarks(con, store, report)
        _check(con, store, series, hist_parts, sample_parts, namespaces, report)
    finally:
        con.close()
    return report


def _copy_watermarks(con, store, report: CopyReport) -> None:
    for key, value in con.execute("SELECT key, value FROM meta WHERE key LIKE 'rollup_%'").fetchall():
        with store._conn() as pg:
            row = pg.execute(q("get_meta"), {"key": key}).fetchone()
            if row is None:
                pg.execute(q("set_meta"), {"key": key, "value": value})
            elif row[0] != value:
                report.warnings.append(
                    f"PostgreSQL already has its own {key} ({row[0]}, the file has {value}); kept PostgreSQL's: "
                    "copy into a database tocsin has not written to yet to keep rollups exact")


def _check(con, store, series, hist_parts, sample_parts, namespaces, report: CopyReport) -> None:
    ids = codec.to_signed(np.array([s.id for s in series], np.uint64)).tolist()
    with store._conn() as pg:
        found = pg.execute("SELECT count(*) FROM series WHERE series_id = ANY(%s::int8[])", [ids]).fetchone()[0]
        report.checks.append(Check("series", len(series), int(found)))
        for res in sorted({r for _, r in hist_parts}):
            names = [n for n, r in hist_parts if r == res]
            union = " UNION ALL ".join(f"SELECT ts, count FROM {n}" for n in names)
            n, total, lo, hi = con.execute(f"SELECT count(*), coalesce(sum(count), 0)::BIGINT, epoch_us(min(ts)), "
                                           f"epoch_us(max(ts)) FROM ({union})").fetchall()[0]
            if not n:
                continue
            pn, ptotal = pg.execute(
                "SELECT count(*), coalesce(sum(count), 0) FROM hist WHERE res = %s AND ts >= to_timestamp(%s / 1e6) "
                "AND ts <= to_timestamp(%s / 1e6)", [res, lo, hi]).fetchone()
            report.checks.append(Check(f"histogram rows at {res} s", int(n), int(pn)))
            report.checks.append(Check(f"observations at {res} s", int(total), int(ptotal)))
        if sample_parts:
            union = " UNION ALL ".join(f"SELECT series_id, ts FROM {n}" for n, _ in sample_parts)
            n, lo, hi = con.execute(f"SELECT count(DISTINCT (series_id, ts)), epoch_us(min(ts)), epoch_us(max(ts)) "
                                    f"FROM ({union})").fetchall()[0]
            if n:
                pn = pg.execute("SELECT count(*) FROM samples WHERE ts >= to_timestamp(%s / 1e6) "
                                "AND ts <= to_timestamp(%s / 1e6)", [lo, hi]).fetchone()[0]
                report.checks.append(Check("float samples", int(n), int(pn)))
        ex_parts = [n for n, _ in _parts(con, "exemplars")]
        if ex_parts:
            union = " UNION ALL ".join(f"SELECT series_id, ts, grp FROM {n}" for n in ex_parts)
            n, lo, hi = con.execute(f"SELECT count(DISTINCT (series_id, ts, grp)), epoch_us(min(ts)), "
                                    f"epoch_us(max(ts)) FROM ({union})").fetchall()[0]
            if n:
                pn = pg.execute("SELECT count(*) FROM exemplars WHERE ts >= to_timestamp(%s / 1e6) "
                                "AND ts <= to_timestamp(%s / 1e6)", [lo, hi]).fetchone()[0]
                report.checks.append(Check("exemplars", int(n), int(pn)))
        with pg.cursor() as cur:
            have = kv.namespaces(cur)
        for ns in namespaces:
            n = con.execute("SELECT count(*) FROM kv WHERE namespace = ?", [ns]).fetchall()[0][0]
            report.checks.append(Check(f"documents in {ns}", int(n), int(have.get(ns, 0))))
