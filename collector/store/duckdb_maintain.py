"""Rollups (10 s → 1 min → 1 h), series-ordered rewrites of closed partitions and
retention for the DuckDB store: the work ``maintain`` does every minute, apart
from the write and read paths. Mixed into ``DuckDBStore``; uses its connection,
locks and partition map.

The work is cut into bounded units — one chunk of a rollup, one partition sorted,
one partition dropped — each in its own transaction under the writer lock, which
is released between units: a first pass over a large backlog never holds up a
flush, a rule's read or an alert-state write for more than one unit, its memory
is bounded by one chunk, and a shutdown (or a crash) between units leaves the
store consistent (each rollup chunk moves its watermark in its own transaction,
so it happens exactly once).
"""
from __future__ import annotations

import duckdb
from collector import cancel
from collector.aggregate.merge import merge_rows
from collector.model import NS
from collector.store import arrow_rows
from collector.store.duckdb_exemplars import DEDUPE_SELECT, KIND as EXEMPLARS

# A rollup reads at most this much time of finer rows per unit (whole coarser slots).
ROLLUP_CHUNK_S = 600


class Maintenance:
    def _watermark(self, res: int) -> int | None:
        rows = self._con.execute("SELECT value FROM meta WHERE key = ?", [f"rollup_{res}"]).fetchall()
        return int(rows[0][0]) if rows else None

    def maintain(self, now_ns: int) -> dict[str, int]:
        done = {"rolled_up_rows": 0, "dropped_partitions": 0, "sorted_partitions": 0}
        now_s = now_ns // NS
        for finer, coarser in zip(self.resolutions, self.resolutions[1:]):
            done["rolled_up_rows"] += self._rollup(finer, coarser, now_s)
        done["sorted_partitions"] = self._sort_closed(now_s)
        done["dropped_partitions"] = self._drop_expired(now_s)
        return done

    def _drop_expired(self, now_s: int) -> int:
        n = 0
        with self._meta:
            parts = list(self._parts.items())
        for name, (kind, res, _start, end, _sorted) in parts:
            keep = self.retention.samples if kind == "samples" else self.retention.by_res.get(res, 0)
            if end > now_s - keep:
                continue
            cancel.check()
            with self._lock:
                with self._meta:
                    del self._parts[name]
                self._rebuild_views()   # the views stop naming it before it goes
                self._con.execute(f"DROP TABLE IF EXISTS {name}")
                self._con.execute("DELETE FROM partitions WHERE name = ?", [name])
                self._reclaim()
            n += 1
        return n

    def _rollup(self, finer: int, coarser: int, now_s: int) -> int:
        """Merge finished ``finer`` slots into ``coarser`` ones, once each: chunk by
        chunk, each chunk's rows and its watermark (``rollup_<coarser>`` in ``meta``)
        in one transaction."""
        target = (now_s - self.retention.rollup_after - finer) // coarser * coarser
        with self._lock:
            wm = self._watermark(coarser)
            if wm is None:
                with self._meta:
                    starts = [p[2] for p in self._parts.values() if p[0] == "hist" and p[1] == finer]
                if not starts:
                    return 0
                first = self._con.execute(
                    f"SELECT min(epoch(ts))::BIGINT FROM hist_all WHERE res = {finer}").fetchall()[0][0]
                if first is None:
                    return 0
                wm = first // coarser * coarser
        chunk = max(coarser, ROLLUP_CHUNK_S // coarser * coarser)
        written = 0
        while wm < target:
            cancel.check()
            hi = min(target, wm + chunk)
            with self._meta:
                names = sorted(n for n, p in self._parts.items() if p[0] == "hist" and p[1] == finer
                               and p[3] > wm and p[2] < hi)
            if not names:   # a gap in the data: jump to the next partition that has some
                with self._meta:
                    later = [p[2] for p in self._parts.values() if p[0] == "hist" and p[1] == finer
                             and p[2] >= hi and p[2] < target]
                hi = min(target, min(later) // coarser * coarser) if later else target
                hi = max(hi, wm + coarser)
            with self._lock:
                self._con.execute("BEGIN TRANSACTION")
                try:
                    for name in names:
                        t = self._con.sql(
                            f"SELECT series_id, epoch_ns(ts) AS ts, res, count, sum, min, max, idx, cnt, bounds "
                            f"FROM {name} WHERE ts >= to_timestamp({wm}) AND ts < to_timestamp({hi})"
                        ).to_arrow_table()
                        rows = arrow_rows.hist_from_arrow(t)
                        if len(rows):
                            merged = merge_rows(rows, slot_ns=coarser * NS, res=coarser)
                            self._write_hist(merged)
                            written += len(merged)
                    self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"rollup_{coarser}", str(hi)])
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
                with self._meta:
                    self._wm[coarser] = hi
            wm = hi
        if written:
            self._reclaim()
        return written

    def _sort_closed(self, now_s: int) -> int:
        """Rewrite partitions that can no longer receive data in (series_id, ts)
        order, once each: reads of a few series then skip most of the table.
        Exemplar partitions keep one row per (series, slot, octave) then."""
        n = 0
        with self._meta:
            parts = list(self._parts.items())
        for name, (kind, res, start, end, is_sorted) in parts:
            if is_sorted or end > now_s - self.retention.rollup_after:
                continue
            cancel.check()
            with self._lock:
                self._con.execute("BEGIN TRANSACTION")
                try:
                    select = DEDUPE_SELECT.format(name=name) if kind == EXEMPLARS else \
                        f"SELECT * FROM {name} ORDER BY series_id, ts"
                    self._con.execute(f"CREATE TABLE {name}__sorted AS {select}")
                    self._con.execute(f"DROP TABLE {name}")
                    self._con.execute(f"ALTER TABLE {name}__sorted RENAME TO {name}")
                    self._con.execute("UPDATE partitions SET sorted = true WHERE name = ?", [name])
                    self._con.execute("COMMIT")
                except BaseException:
                    self._con.execute("ROLLBACK")
                    raise
                with self._meta:
                    self._parts[name] = (kind, res, start, end, True)
                self._reclaim()
            n += 1
        return n

    def _reclaim(self) -> None:
        """Checkpoint after a unit that freed blocks (a partition rewritten or
        dropped): DuckDB reuses freed blocks only once a checkpoint has released
        them, so without it every rewrite of a pass took new ones and the first
        pass over a backlog doubled the file. Skipped when a reader's transaction
        holds it back; the next unit tries again."""
        try:
            self._con.execute("CHECKPOINT")
        except duckdb.Error:
            pass
