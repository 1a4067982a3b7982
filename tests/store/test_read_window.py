"""DuckDBStore.read_hist with min_end_ns: exactly the rows that end after it,
at every resolution (10 s rows and rolled-up 60 s rows)."""
import numpy as np

from collector.model import NS
from collector.store.base import Retention, WriteBatch
from collector.store.duckdb_store import DAY, DuckDBStore
from benchdata import rows_for


def _ends(rows):
    return rows.ts + rows.res.astype(np.int64) * NS


def test_min_end_leaves_out_exactly_the_rows_ending_before(tmp_path):
    end_s = 1_800_000_000 // DAY * DAY + 300          # five minutes into a day
    store = DuckDBStore(str(tmp_path / "w.duckdb"),
                        Retention(by_res={10: 240, 60: 30 * DAY, 3600: 400 * DAY}, samples=30 * DAY))
    series, rows = rows_for(end_s * NS, 1800)
    store.write(WriteBatch(series=series, hist=rows))
    store.maintain(end_s * NS)                        # older slots now come back as 60 s rows
    ids = np.array(sorted(s.id for s in series), np.uint64)
    lo, hi = (end_s - 3600) * NS, end_s * NS
    full = store.read_hist(ids, lo, hi)
    assert set(full.res.tolist()) == {10, 60}
    for back in (30, 200, 400, 1000):
        min_end = (end_s - back) * NS
        got = store.read_hist(ids, lo, hi, min_end_ns=min_end)
        keep = _ends(full) > min_end
        assert sorted(zip(got.series_id.tolist(), got.ts.tolist())) == \
            sorted(zip(full.series_id[keep].tolist(), full.ts[keep].tolist()))
        assert int(got.count.sum()) == int(full.count[keep].sum())
    store.close()
