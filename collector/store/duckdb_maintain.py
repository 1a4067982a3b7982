"""Rollups (10 s → 1 min → 1 h), series-ordered rewrites of closed partitions and
retention for the DuckDB store: the work ``maintain`` does every minute, apart
from the write and read paths. Mixed into ``DuckDBStore``; uses its connection,
lock and partition map."""
from __future__ import annotations

from collector.aggregate.merge import merge_rows
from collector.model import NS
from collector.store import arrow_rows


class Maintenance:
    def _watermark(self, res: int) -> int | None:
        rows = self._con.execute("SELECT value FROM meta WHERE key = ?", [f"rollup_{res}"]).fetchall()
        return int(rows[0][0]) if rows else None

    def maintain(self, now_ns: int) -> dict[str, int]:
        done = {"rolled_up_rows": 0, "dropped_partitions": 0, "sorted_partitions": 0}
        now_s = now_ns // NS
        with self._lock:
            for finer, coarser in zip(self.resolutions, self.resolutions[1:]):
                done["rolled_up_rows"] += self._rollup(finer, coarser, now_s)
            done["sorted_partitions"] = self._sort_closed(now_s)
            for name, (kind, res, _start, end, _sorted) in list(self._parts.items()):
                keep = self.retention.samples if kind == "samples" else self.retention.by_res.get(res, 0)
                if end <= now_s - keep:
                    self._con.execute(f"DROP TABLE IF EXISTS {name}")
                    self._con.execute("DELETE FROM partitions WHERE name = ?", [name])
                    del self._parts[name]
                    done["dropped_partitions"] += 1
            if done["dropped_partitions"]:
                self._rebuild_views()
        return done

    def _rollup(self, finer: int, coarser: int, now_s: int) -> int:
        """Merge finished ``finer`` slots into ``coarser`` ones, once each
        (a watermark in ``meta`` says how far it got)."""
        target = (now_s - self.retention.rollup_after - finer) // coarser * coarser
        wm = self._watermark(coarser)
        if wm is None:
            starts = [p[2] for p in self._parts.values() if p[0] == "hist" and p[1] == finer]
            if not starts:
                return 0
            first = self._con.execute(
                f"SELECT min(epoch(ts))::BIGINT FROM hist_all WHERE res = {finer}").fetchall()[0][0]
            if first is None:
                return 0
            wm = first // coarser * coarser
        if target <= wm:
            return 0
        names = [n for n, p in self._parts.items() if p[0] == "hist" and p[1] == finer and p[3] > wm
                 and p[2] < target]
        written = 0
        for name in sorted(names):
            t = self._con.sql(f"SELECT series_id, epoch_ns(ts) AS ts, res, count, sum, min, max, idx, cnt, bounds "
                              f"FROM {name} WHERE ts >= to_timestamp({wm}) AND ts < to_timestamp({target})"
                              ).to_arrow_table()
            rows = arrow_rows.hist_from_arrow(t)
            if len(rows):
                merged = merge_rows(rows, slot_ns=coarser * NS, res=coarser)
                self._write_hist(merged)
                written += len(merged)
        self._con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", [f"rollup_{coarser}", str(target)])
        self._wm[coarser] = target
        return written

    def _sort_closed(self, now_s: int) -> int:
        """Rewrite partitions that can no longer receive data in (series_id, ts)
        order, once each: reads of a few series then skip most of the table."""
        n = 0
        for name, (kind, res, start, end, is_sorted) in list(self._parts.items()):
            if is_sorted or end > now_s - self.retention.rollup_after:
                continue
            self._con.execute("BEGIN TRANSACTION")
            try:
                self._con.execute(f"CREATE TABLE {name}__sorted AS SELECT * FROM {name} ORDER BY series_id, ts")
                self._con.execute(f"DROP TABLE {name}")
                self._con.execute(f"ALTER TABLE {name}__sorted RENAME TO {name}")
                self._con.execute("UPDATE partitions SET sorted = true WHERE name = ?", [name])
                self._con.execute("COMMIT")
            except Exception:
                self._con.execute("ROLLBACK")
                raise
            self._parts[name] = (kind, res, start, end, True)
            n += 1
        return n
