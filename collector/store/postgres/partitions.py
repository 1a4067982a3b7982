"""Time partitions of ``hist`` (by ``RANGE (res, ts)``), ``samples`` and
``exemplars`` (by ``RANGE (ts)``; exemplars are listed with the slot resolution,
so retention drops them with those rows): named, created ahead of the data,
dropped whole by retention.

A partition is created as a plain table and then attached: ``ATTACH PARTITION``
takes only a SHARE UPDATE EXCLUSIVE lock on the parent, so reads and writes go on
meanwhile (``CREATE TABLE ... PARTITION OF`` would block them). Retention detaches
with ``DETACH PARTITION ... CONCURRENTLY`` before dropping, for the same reason.
Creation is serialized across processes by an advisory lock, and every partition
is listed in table ``partitions`` in the same transaction, so readers know which
time each resolution still covers.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import psycopg
from psycopg import sql

from collector.model import NS, ExemplarRows, HistRows, SampleRows
from collector.store.postgres.queries import q

log = logging.getLogger(__name__)

DAY = 86_400
HIST_SPAN = {60: DAY, 3600: 30 * DAY}   # other resolutions (the slot): an hour per table
SAMPLES_SPAN = DAY


@dataclass(frozen=True)
class Part:
    kind: str      # 'hist' | 'samples' | 'exemplars'
    res: int       # 0 for samples; the slot resolution for exemplars
    start: int     # seconds
    end: int

    @property
    def name(self) -> str:
        span = self.end - self.start
        stamp = datetime.fromtimestamp(self.start, timezone.utc).strftime("%Y%m%d%H" if span < DAY else "%Y%m%d")
        return f"hist_{self.res}_{stamp}" if self.kind == "hist" else f"{self.kind}_{stamp}"


def span_of(kind: str, res: int) -> int:
    return SAMPLES_SPAN if kind == "samples" else HIST_SPAN.get(res, 3600)


def part_at(kind: str, res: int, ts_s: int) -> Part:
    span = span_of(kind, res)
    start = ts_s // span * span
    return Part(kind, res, start, start + span)


def needed_for(hist: HistRows, samples: SampleRows, exemplars: ExemplarRows | None = None,
               exemplar_res: int = 0) -> set[Part]:
    out: set[Part] = set()
    if exemplars is not None and len(exemplars):
        span = span_of("exemplars", exemplar_res)
        starts = np.unique(exemplars.ts // NS // span * span)
        out.update(Part("exemplars", exemplar_res, s, s + span) for s in starts.tolist())
    if len(hist):
        for res in np.unique(hist.res).tolist():
            span = span_of("hist", res)
            starts = np.unique(hist.ts[hist.res == res] // NS // span * span)
            out.update(Part("hist", res, s, s + span) for s in starts.tolist())
    if len(samples):
        starts = np.unique(samples.ts // NS // SAMPLES_SPAN * SAMPLES_SPAN)
        out.update(Part("samples", 0, s, s + SAMPLES_SPAN) for s in starts.tolist())
    return out


def _ts(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat()


def existing(conn: psycopg.Connection) -> dict[str, Part]:
    rows = conn.execute(q("list_partitions")).fetchall()
    return {name: Part(kind, res, start, end) for name, kind, res, start, end in rows}


def create(conn: psycopg.Connection, parts: set[Part]) -> list[str]:
    """Create and attach the missing ones (one transaction, under the partition
    lock); returns the names created."""
    made = []
    with conn.transaction():
        conn.execute(q("partition_lock"))
        have = existing(conn)
        for p in sorted(parts, key=lambda p: (p.kind, p.res, p.start)):
            if p.name in have:
                continue
            ident = sql.Identifier(p.name)
            parent = sql.Identifier(p.kind)
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(ident, parent))
            if p.kind == "hist":
                bound = sql.SQL("FROM ({res}, {a}) TO ({res}, {b})").format(
                    res=sql.Literal(p.res), a=sql.Literal(_ts(p.start)), b=sql.Literal(_ts(p.end)))
            else:
                bound = sql.SQL("FROM ({a}) TO ({b})").format(a=sql.Literal(_ts(p.start)), b=sql.Literal(_ts(p.end)))
            conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES ").format(parent, ident) + bound)
            conn.execute(q("add_partition_row"), {"name": p.name, "kind": p.kind, "res": p.res,
                                                  "start": p.start, "end": p.end})
            made.append(p.name)
    return made


def drop(conn: psycopg.Connection, name: str, kind: str) -> None:
    """Forget, detach without blocking readers and writers, drop. ``conn`` must be
    in autocommit mode (DETACH ... CONCURRENTLY cannot run in a transaction)."""
    conn.execute(q("delete_partition_row"), {"name": name})
    ident, parent = sql.Identifier(name), sql.Identifier(kind)
    attached = conn.execute("SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s)", [name]).fetchone()
    if attached:
        try:
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(parent, ident))
        except psycopg.errors.ObjectNotInPrerequisiteState:
            # an earlier detach was interrupted half-way: finish it
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(parent, ident))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ident))
