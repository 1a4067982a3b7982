from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from collector.selfmetrics import SelfMetrics  # noqa: E402
from notify_fakes import FakeClock  # noqa: E402


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> SelfMetrics:
    return SelfMetrics()


BACKENDS = ("duckdb", "postgresql")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every notify test that keeps state runs on both real stores (the root
    conftest's ``make_store`` reads this fixture)."""
    return request.param


@pytest.fixture
def store(make_store):
    """A real store of the test's backend (DuckDB file or PostgreSQL)."""
    return make_store()


@pytest.fixture
def reopen(make_store):
    """Returns a store for 'after a restart': the same data, a new store object."""
    return make_store
