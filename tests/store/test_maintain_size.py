"""Maintenance alone does not grow the DuckDB file: the first pass over a backlog
(rollups, every closed hour rewritten in series order) reuses the blocks it frees
instead of doubling the file, and later passes with nothing to do leave it as it is."""
from __future__ import annotations

import os

import duckdb

from bench import datagen
from collector.model import NS
from collector.store.duckdb_store import DuckDBStore

END_S = 1_735_776_000 + 300


def _size(path: str) -> int:
    return os.path.getsize(path) + (os.path.getsize(path + ".wal") if os.path.exists(path + ".wal") else 0)


def test_first_pass_reuses_freed_blocks_and_idle_passes_do_not_grow(tmp_path):
    path = str(tmp_path / "m.duckdb")
    store = DuckDBStore(path)
    datagen.fill(store, datagen.make_series(4, 10), END_S * NS, 4 * 3600)
    store.maintain((END_S + 600) * NS)
    store.close()
    after_first = _size(path)
    # the same content written once, into a fresh file: what the data itself takes
    ideal = str(tmp_path / "ideal.duckdb")
    con = duckdb.connect(path)
    con.execute(f"ATTACH '{ideal}' AS ideal")
    con.execute("COPY FROM DATABASE m TO ideal")
    con.execute("DETACH ideal")
    con.close()
    assert after_first <= 1.4 * _size(ideal), (after_first, _size(ideal))
    store = DuckDBStore(path)
    for k in range(3):
        assert sum(store.maintain((END_S + 660 + 60 * k) * NS).values()) == 0
    store.close()
    assert _size(path) <= after_first
