"""Run by tests/store/test_zero_downtime.py with PYTHONPATH set to the code of the
previous head (from git history), so ``collector`` here is that older code: it
keeps writing and reading while the test migrates the database to the new head.

    python old_workload.py DSN WORKDIR

Loop: write one slot of every series (known counts), a document, read the slot
back. Once WORKDIR/migrated exists it opens a second store — an old replica
restarting during the rollout — and goes on with it for a few rounds. Results
in WORKDIR/result.json; any exception is recorded, never raised.

Only the store's stable interface is used (PostgresStore(dsn, writer=...),
write(WriteBatch), read_hist, kv_put/kv_get, wal_marker): keep it so, and if a
future release changes it, teach this script both forms.
"""
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from collector.model import KIND_HDR, NS, HistRows, Series, make_labels, series_id
from collector.store.base import WriteBatch
from collector.store.postgres.store import PostgresStore

dsn, work = sys.argv[1], Path(sys.argv[2])
T0 = 1_800_000_000 * NS
SERIES = [Series(series_id("m", make_labels({"i": str(i)})), "m", make_labels({"i": str(i)}), KIND_HDR, "s")
          for i in range(20)]
ids = np.array([s.id for s in SERIES], np.uint64)
result = {"rounds": 0, "after_migration": 0, "spans": 0, "errors": []}


def batch(k: int) -> WriteBatch:
    n = len(SERIES)
    counts = np.full(n, k + 1, np.int64)
    rows = HistRows(ids, np.full(n, T0 + k * 10 * NS, np.int64), np.full(n, 10, np.int32), counts,
                    counts * 0.1, np.full(n, 0.1), np.full(n, 0.1), np.arange(n + 1, dtype=np.int64),
                    np.full(n, 1000, np.int32), counts)
    return WriteBatch(series=SERIES if k == 0 else [], hist=rows, wal_segment=k + 1,
                      documents={"old_workload": {f"k{k}": {"round": k}}})


def round_(store, k: int) -> None:
    store.write(batch(k))
    got = store.read_hist(ids, T0 + k * 10 * NS, T0 + (k + 1) * 10 * NS)
    assert int(got.count.sum()) == (k + 1) * len(SERIES), f"round {k}: read {int(got.count.sum())}"
    assert store.kv_get("old_workload", f"k{k}") == {"round": k}
    assert store.wal_marker() == k + 1
    result["spans"] += (k + 1) * len(SERIES)


try:
    store = PostgresStore(dsn, writer="old")
    (work / "started").touch()
    k, after = 0, 0
    deadline = time.time() + 120
    while after < 5 and time.time() < deadline:
        if (work / "migrated").exists() and after == 0:
            store.close()
            store = PostgresStore(dsn, writer="old")     # an old replica restarting mid-rollout
        try:
            round_(store, k)
        except Exception:  # noqa: BLE001 - the test reads them
            result["errors"].append(traceback.format_exc(limit=3))
            if len(result["errors"]) > 5:
                break
        if (work / "migrated").exists():
            after += 1
            result["after_migration"] = after
        k += 1
        result["rounds"] = k
        time.sleep(0.05)
    store.close()
except Exception:  # noqa: BLE001
    result["errors"].append(traceback.format_exc(limit=3))
(work / "result.json").write_text(json.dumps(result))
