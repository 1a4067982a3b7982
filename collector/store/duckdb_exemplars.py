"""Exemplars in the DuckDB store: partitions ``exemplars_<YYYYMMDDHH>`` of the
slot resolution (listed in ``partitions`` with kind 'exemplars'), so retention
drops them with the slot-resolution rows; rollups carry none.

Writes only append: a slot written twice (open slots are flushed with the WAL
on) may hold two rows for one (series, slot, octave) until its partition is
closed and rewritten (``duckdb_maintain._sort_closed``), which keeps the larger
value; readers dedupe the same way (``exemplars.dedupe``). So a flush never reads
before it writes. Mixed into ``DuckDBStore``.
"""
from __future__ import annotations

import numpy as np

from collector.aggregate.exemplars import dedupe
from collector.model import NS, ExemplarRows
from collector.store import arrow_rows

KIND = "exemplars"
# The rewrite of a closed partition: one row per (series, slot, octave), the slowest.
DEDUPE_SELECT = ("SELECT * FROM {name} QUALIFY row_number() OVER (PARTITION BY series_id, ts, grp "
                 "ORDER BY value DESC, observed_at, trace_id) = 1 ORDER BY series_id, ts, grp")


class ExemplarStore:
    def _exemplar_res(self) -> int:
        return self.resolutions[0]   # the slot: exemplars live as long as its rows

    def _write_exemplars(self, rows: ExemplarRows) -> None:
        res = self._exemplar_res()
        hours, where = np.unique(rows.ts // NS, return_inverse=True)
        tables = np.array([self._partition(KIND, res, int(t)) for t in hours.tolist()])[where]
        for part in np.unique(tables).tolist():
            self._insert(part, arrow_rows.exemplars_to_arrow(rows.take(np.nonzero(tables == part)[0])))

    def read_exemplars(self, series_ids: np.ndarray, start_ns: int, end_ns: int) -> ExemplarRows:
        t = self._read_partitions(KIND, series_ids, start_ns, end_ns, "series_id, epoch_ns(ts) AS ts, grp, "
                                  "epoch_ns(observed_at) AS at, value, trace_id, span_id")
        return ExemplarRows.empty() if t is None else dedupe(arrow_rows.exemplars_from_arrow(t))

    def _exemplar_views(self) -> None:
        """``exemplars_all`` (every partition) and the analysts' ``latency_exemplars``:
        one row per exemplar with its series' metric and labels, ids in hex."""
        names = ["exemplars_empty"] + sorted(n for n, p in self._parts.items() if p[0] == KIND)
        self._con.execute("CREATE OR REPLACE VIEW exemplars_all AS "
                          + " UNION ALL ".join(f"SELECT * FROM {n}" for n in names))
        self._con.execute("""CREATE OR REPLACE VIEW latency_exemplars AS
            SELECT e.ts, e.observed_at, s.metric, s.labels, e.value, lower(hex(e.trace_id)) AS trace_id,
                   lower(hex(e.span_id)) AS span_id
            FROM exemplars_all e JOIN series s USING (series_id)
            QUALIFY row_number() OVER (PARTITION BY e.series_id, e.ts, e.grp ORDER BY e.value DESC, e.observed_at) = 1""")
