"""Maintenance in bounded units (issue 16): a first pass over a large backlog
never holds up an alert-state write or a read for more than one unit, stops
between units when cancelled, and rolls every slot up exactly once even when it
was stopped half-way."""
import threading
import time

import duckdb
import numpy as np

from bench import datagen
from collector import cancel
from collector.model import NS
from collector.store.duckdb_store import DuckDBStore

HOURS = 6


def _backlog(path) -> int:
    store = DuckDBStore(str(path))
    end = time.time_ns() // (10 * NS) * (10 * NS) - 3600 * NS
    datagen.fill(store, datagen.make_series(10, 10), end, HOURS * 3600)
    store.close()
    return end


def _totals(path) -> dict[int, int]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT res, sum(count) FROM hist_all GROUP BY res").fetchall()
    finally:
        con.close()
    return {int(r): int(c) for r, c in rows}


def test_alert_state_and_reads_never_wait_for_a_whole_pass(tmp_path):
    path = tmp_path / "t.duckdb"
    end = _backlog(path)
    store = DuckDBStore(str(path))
    sids = np.array([s.id for s in store.load_series()[:5]], np.uint64)
    waits: list[float] = []
    done = threading.Event()

    def alerting_side():
        i = 0
        while not done.is_set():
            t0 = time.monotonic()
            store.kv_put("alerts", f"k{i % 10}", {"state": "firing", "i": i})
            assert store.kv_get("alerts", f"k{i % 10}")["i"] == i
            store.read_hist(sids, end - 300 * NS, end)
            waits.append(time.monotonic() - t0)
            i += 1
            time.sleep(0.01)

    t = threading.Thread(target=alerting_side)
    t.start()
    t0 = time.monotonic()
    try:
        done_counts = store.maintain(time.time_ns())
    finally:
        took = time.monotonic() - t0
        done.set()
        t.join()
    assert done_counts["rolled_up_rows"] > 0 and done_counts["sorted_partitions"] > 0
    assert len(waits) > 10
    # one unit at most, never the pass: each wait is a fraction of the whole pass
    assert max(waits) < max(0.5, took / 4), (max(waits), took)
    store.close()


def test_a_cancelled_pass_stops_between_units_and_the_next_one_rolls_up_each_slot_once(tmp_path):
    path = tmp_path / "t.duckdb"
    _backlog(path)
    store = DuckDBStore(str(path))
    token = cancel.Token()
    calls = {"n": 0}
    real_write = store._write_hist

    def write_then_cancel(rows):   # cancel after the second rollup chunk's write
        real_write(rows)
        calls["n"] += 1
        if calls["n"] == 2:
            token.cancel(cancel.SHUTDOWN)

    store._write_hist = write_then_cancel
    with cancel.running(token):
        try:
            store.maintain(time.time_ns())
            raise AssertionError("maintenance did not stop when cancelled")
        except cancel.Cancelled:
            pass
    store._write_hist = real_write
    store.close()
    partial = _totals(path)
    assert 0 < partial.get(60, 0) < partial[10]   # stopped half-way, consistently

    store = DuckDBStore(str(path))
    store.maintain(time.time_ns())
    store.close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        (wm,) = con.execute("SELECT value FROM meta WHERE key = 'rollup_60'").fetchone()
        ten, minute = con.execute(
            f"SELECT (SELECT sum(count) FROM hist_all WHERE res = 10 AND ts < to_timestamp({int(wm)})), "
            f"(SELECT sum(count) FROM hist_all WHERE res = 60)").fetchone()
    finally:
        con.close()
    assert minute == ten, "a rollup chunk was counted twice or lost"
