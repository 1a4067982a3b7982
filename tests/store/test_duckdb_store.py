"""What only the DuckDB store has: its schema versioning. Writes, merges, rollups,
retention, samples and reopening are in test_store_contract.py, on both backends."""
import pytest

from collector.store.base import StoreError
from collector.store.duckdb_store import DuckDBStore


def test_newer_schema_is_refused_with_a_clear_message(tmp_path):
    store = DuckDBStore(str(tmp_path / "t.duckdb"))
    store._con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    store.close()
    with pytest.raises(StoreError, match="schema version 999, newer than this tocsin"):
        DuckDBStore(str(tmp_path / "t.duckdb"))
