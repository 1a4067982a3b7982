import contextlib
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the same examples every time (a flaky landing helps nobody); local runs explore.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backends import pg_unavailable, server_env  # noqa: E402
from serverproc import ServerProcess  # noqa: E402

PG_TEMPLATE = "tocsin_template"


@contextlib.contextmanager
def _postgres(database: str):
    """A real PostgreSQL of its own (tests/pgserver.py) with ``database`` at the newest schema."""
    from pgserver import PgUnavailable, start_cluster

    from collector.store.postgres import migrate

    try:
        cluster = start_cluster()
    except PgUnavailable as e:
        pg_unavailable(str(e))
    try:
        cluster.create_database(database)
        migrate.upgrade(cluster.dsn(database))
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_cluster():
    """One real PostgreSQL per test worker (pytest-xdist runs a session per worker),
    with a template database at the newest schema."""
    with _postgres(PG_TEMPLATE) as cluster:
        yield cluster


@pytest.fixture
def own_pg():
    """A PostgreSQL of this test's own, which it may stop, kill or replicate; a
    migrated database ``tocsin``."""
    with _postgres("tocsin") as cluster:
        yield cluster


@pytest.fixture
def pg_dsn(pg_cluster):
    """A fresh database at the newest schema (a copy of the template: fast)."""
    name = pg_cluster.create_database(template=PG_TEMPLATE)
    yield pg_cluster.dsn(name)
    pg_cluster.drop_database(name)


@pytest.fixture
def backend(request):
    """The store backend a test runs on: "duckdb" unless the test is parametrized
    with ``backends.both_backends`` (or ``@pytest.mark.parametrize("backend", [...], indirect=True)``)."""
    return getattr(request, "param", "duckdb")


@pytest.fixture
def make_store(backend, tmp_path, request):
    """``make_store(retention=None, writer="")``: a store of the test's backend; called
    again, the same data in a new store object (a restart). Closed at the end."""
    opened = []

    def make(retention=None, writer: str = ""):
        if backend == "postgresql":
            from collector.store.postgres.store import DEFAULT_RETENTION, PostgresStore

            s = PostgresStore(request.getfixturevalue("pg_dsn"), retention or DEFAULT_RETENTION, writer=writer)
        else:
            from collector.store.duckdb_store import DEFAULT_RETENTION, DuckDBStore

            for earlier in opened:   # DuckDB: one open handle per file
                earlier.close()
            opened.clear()
            s = DuckDBStore(str(tmp_path / "tocsin.duckdb"), retention or DEFAULT_RETENTION, writer=writer)
        opened.append(s)
        return s

    yield make
    for s in opened:
        try:
            s.close()
        except Exception:
            pass


@pytest.fixture
def server_factory(tmp_path, backend, request):
    """Start real `tocsin serve` processes on the test's backend; all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(config: dict | None = None, env: dict | None = None, workdir: Path | None = None) -> ServerProcess:
        wd = workdir or tmp_path
        s = ServerProcess(wd, config, {**server_env(backend, request, wd), **(env or {})}).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def prometheus_factory(tmp_path):
    """Start Debian's real Prometheus; skipped where it is not installed."""
    from promproc import PROMETHEUS, PrometheusProcess

    if PROMETHEUS is None:
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    started: list = []

    def start(config: dict, rules: dict | None = None, name: str = "prometheus", port: int | None = None,
              args: tuple[str, ...] = ()):
        p = PrometheusProcess(tmp_path / name, config, rules, port=port, args=args).start()
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()
