"""Running a test on both store backends: ``@both_backends`` parametrizes the
``backend`` fixture (tests/conftest.py), which ``make_store`` and
``server_factory`` use. PostgreSQL runs are mandatory under CI."""
import os

import pytest

BACKENDS = ("duckdb", "postgresql")
both_backends = pytest.mark.parametrize("backend", BACKENDS, indirect=True)
PG_DSN_ENV = "TOCSIN_TEST_PG_DSN"


def pg_unavailable(reason: str):
    """PostgreSQL is part of CI: there a missing server fails; locally it skips."""
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required under CI and could not be started: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL is not available: {reason}")


def server_env(backend: str, request, workdir) -> dict:
    """Environment that points `tocsin serve` (tests/serverproc.py) at the backend's
    store: nothing for DuckDB (the file in the work directory); for PostgreSQL a
    fresh database of the worker's cluster and a WAL directory in the work directory."""
    if backend != "postgresql":
        return {}
    dsn = request.getfixturevalue("pg_dsn")
    return {"TOCSIN_STORAGE__BACKEND": "postgresql", "TOCSIN_STORAGE__POSTGRESQL__DSN_ENV": PG_DSN_ENV,
            PG_DSN_ENV: dsn, "TOCSIN_STORAGE__WAL_DIR": str(workdir / "wal")}


def latency_rows(store, where: str = "TRUE", columns: str = "metric, labels, count, p50, p90, p95, p99, "
                 "resolution, sum") -> list[tuple]:
    """Rows of the store's ``latency`` view, read the way an analyst would: DuckDB
    through the store's own connection (the file is locked), PostgreSQL through a
    separate psql-like connection. ``labels`` comes back as a dict either way,
    ``resolution`` as a timedelta."""
    if hasattr(store, "_con"):
        return store._con.sql(f"SELECT {columns} FROM latency WHERE {where}").fetchall()
    import psycopg

    with psycopg.connect(store.settings.dsn) as con:
        return con.execute(f"SELECT {columns} FROM latency WHERE {where}").fetchall()


class Analyst:
    """Runs SQL on the store a `tocsin serve` of the test wrote, as an analyst
    would: the DuckDB file (read-only, the server stopped) or PostgreSQL (a psql-like
    connection, the server may still run). ``label(name)`` is the backend's way of
    reading one label of the ``labels`` column."""

    def __init__(self, backend: str, request, workdir):
        self.backend = backend
        self.dsn = request.getfixturevalue("pg_dsn") if backend == "postgresql" else None
        self.path = str(workdir / "tocsin.duckdb")

    def label(self, name: str) -> str:
        return f"labels->>'{name}'" if self.dsn else f"labels['{name}']"

    def rows(self, sql: str) -> list[tuple]:
        if self.dsn:
            import psycopg

            with psycopg.connect(self.dsn) as con:
                return [tuple(r) for r in con.execute(sql).fetchall()]
        import duckdb

        con = duckdb.connect(self.path, read_only=True)
        try:
            return con.sql(sql).fetchall()
        finally:
            con.close()
