"""What the PostgreSQL store's ``maintain`` does every minute, apart from the
read and write paths: partitions for the coming hours, rollups (10 s → 1 min →
1 h, each finer slot once, the watermark in the same transaction as the rows), and
retention by dropping whole partitions.

Several processes (replicas) share one database, so one maintains at a time: a
session-level advisory lock, taken with ``pg_try_advisory_lock`` — the others skip
this round — and released by PostgreSQL if the holder dies.
"""
from __future__ import annotations

import logging

from collector.aggregate.merge import merge_rows
from collector.model import NS, SampleRows
from collector.store.postgres import codec, partitions
from collector.store.postgres.queries import q

log = logging.getLogger(__name__)

MAINTAIN_LOCK = 7598177913758040426
AHEAD_S = 2 * 3600          # partitions exist this far ahead of now
ROWS_PER_STEP = 200_000     # finer rows one rollup transaction reads, about


def maintain(store, now_ns: int) -> dict[str, int]:
    done = {"rolled_up_rows": 0, "dropped_partitions": 0, "created_partitions": 0}
    now_s = now_ns // NS
    with store._conn() as conn:
        conn.autocommit = True
        try:
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", [MAINTAIN_LOCK]).fetchone()[0]:
                return done
            try:
                done["created_partitions"] = _ahead(store, now_s)
                for finer, coarser in zip(store.resolutions, store.resolutions[1:]):
                    done["rolled_up_rows"] += _rollup(store, conn, finer, coarser, now_s)
                done["dropped_partitions"] = _retention(store, conn, now_s)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", [MAINTAIN_LOCK])
        finally:
            conn.autocommit = False
    return done


def _ahead(store, now_s: int) -> int:
    """Partitions for now and the next hours, so flushes rarely create one."""
    finest = store.resolutions[0]
    want = set()
    for t in range(now_s - 60, now_s + AHEAD_S, 600):
        want.add(partitions.part_at("hist", finest, t))
        want.add(partitions.part_at("exemplars", finest, t))
    want.add(partitions.part_at("samples", 0, now_s))
    want.add(partitions.part_at("samples", 0, now_s + AHEAD_S))
    before = set(store._parts)
    store._ensure_partitions(want)
    return len(set(store._parts) - before)


def _watermark(conn, res: int) -> int | None:
    row = conn.execute(q("get_meta"), {"key": f"rollup_{res}"}).fetchone()
    return int(row[0]) if row else None


def _rollup(store, conn, finer: int, coarser: int, now_s: int) -> int:
    """Merge finished ``finer`` slots into ``coarser`` ones, once each."""
    target = (now_s - store.retention.rollup_after - finer) // coarser * coarser
    wm = _watermark(conn, coarser)
    if wm is None:
        starts = [p.start for p in partitions.existing(conn).values() if p.kind == "hist" and p.res == finer]
        if not starts:
            return 0
        wm = min(starts) // coarser * coarser
    written = 0
    n_series = max(1, conn.execute("SELECT count(*) FROM series").fetchone()[0])
    step = max(1, ROWS_PER_STEP * finer // (n_series * coarser)) * coarser
    while wm < target:
        step_end = min(target, wm + step)
        with conn.cursor(binary=True) as cur:
            cur.execute(q("read_hist_all"), {"res": finer, "lo": _ts(wm), "hi": _ts(step_end)})
            rows = codec.hist_from_columns(*cur.fetchone())
        merged = merge_rows(rows, slot_ns=coarser * NS, res=coarser) if len(rows) else rows
        if len(merged):
            store._ensure_partitions(partitions.needed_for(merged, SampleRows.empty()))
        conn.autocommit = False
        try:
            with conn.cursor() as cur:
                if len(merged):
                    cur.execute("SET LOCAL work_mem = '256MB'")   # the batch is sorted in memory
                    store._upsert_hist(cur, merged)
                cur.execute(q("set_meta"), {"key": f"rollup_{coarser}", "value": str(step_end)})
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.autocommit = True
        written += len(merged)
        wm = step_end
    return written


def _retention(store, conn, now_s: int) -> int:
    n = 0
    for name, p in sorted(partitions.existing(conn).items()):
        keep = store.retention.samples if p.kind == "samples" else store.retention.by_res.get(p.res, 0)
        if p.end <= now_s - keep:
            partitions.drop(conn, name, p.kind)
            with store._parts_lock:
                store._parts.discard(name)
            n += 1
    if n:
        log.info("retention dropped %d partitions", n)
    return n


def _ts(seconds: int):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(seconds, timezone.utc)
