from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collector.selfmetrics import SelfMetrics  # noqa: E402
from notify_fakes import DictStore, FakeClock  # noqa: E402


def _duckdb_store_class():
    if importlib.util.find_spec("collector.store.duckdb_store") is None:
        return None
    from collector.store.duckdb_store import DuckDBStore
    return DuckDBStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> SelfMetrics:
    return SelfMetrics()


@pytest.fixture
def store(tmp_path):
    """A real DuckDB store once collector/store/duckdb_store.py exists; the dict fake before."""
    cls = _duckdb_store_class()
    if cls is None:
        s = DictStore()
        yield s
        return
    s = cls(str(tmp_path / "tocsin.duckdb"))
    yield s
    s.close()


@pytest.fixture
def reopen(tmp_path, store):
    """Returns a store for 'after a restart': the same data, a new object where possible."""
    cls = _duckdb_store_class()

    def _reopen():
        if cls is None:
            return store
        store.close()
        return cls(str(tmp_path / "tocsin.duckdb"))
    return _reopen
