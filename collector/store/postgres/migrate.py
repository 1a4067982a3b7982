"""Schema versions with Alembic: where the database is, whether this code can use
it, and upgrading it under an advisory lock so two processes never migrate at once.

Compatibility (docs/upgrading.md): migrations are expand-then-contract. Each one
records in ``meta.schema_oldest_compatible`` the oldest head whose code still works
once it has run. Code whose head is older than the database's revision (a newer
Tocsin migrated it) may run when its own head is at or after that mark; otherwise
it is refused with a message naming both versions.
"""
from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from importlib import resources

import psycopg

logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)   # else one line per plugin at import
from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402

log = logging.getLogger(__name__)

MIGRATE_LOCK = 0x746F6373696E  # "tocsin": pg_advisory_lock key held while migrating
LOCK_TIMEOUT = "5s"


MIGRATIONS = resources.files("collector.store.postgres") / "migrations"
# More directories of revisions (tests add a made-up next migration to check the
# zero-downtime machinery itself, tests/store/test_zero_downtime.py).
EXTRA_VERSIONS: list[str] = []


def alembic_config(output=None) -> Config:
    cfg = Config(output_buffer=output, stdout=output or io.StringIO())
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if EXTRA_VERSIONS:
        cfg.set_main_option("path_separator", "os")
        cfg.set_main_option("version_locations", os.pathsep.join([str(MIGRATIONS / "versions"), *EXTRA_VERSIONS]))
    return cfg


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    return script().get_current_head()


def known_revisions() -> list[str]:
    """Revision ids from the first to the head."""
    return [r.revision for r in reversed(list(script().walk_revisions()))]


def _order(rev: str) -> int:
    """Revisions are numbered ``0001``, ``0002``, ...: comparable without knowing them."""
    return int(rev.split("_")[0]) if rev.split("_")[0].isdigit() else -1


@dataclass(frozen=True)
class SchemaState:
    current: str | None            # the database's revision (None: empty database)
    head: str                      # this code's newest revision
    oldest_compatible: str | None  # the database's mark

    @property
    def behind(self) -> bool:
        return self.current is None or (self.current in known_revisions() and self.current != self.head)

    @property
    def newer(self) -> bool:
        return self.current is not None and self.current not in known_revisions()

    @property
    def usable(self) -> bool:
        """Can this code read and write the database as it is?"""
        if self.current == self.head:
            return True
        if self.newer:
            return self.oldest_compatible is not None and _order(self.oldest_compatible) <= _order(self.head)
        return False


def state(conn: psycopg.Connection) -> SchemaState:
    current = oldest = None
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('alembic_version') IS NOT NULL, to_regclass('meta') IS NOT NULL")
        has_version, has_meta = cur.fetchone()
        if has_version:
            cur.execute("SELECT version_num FROM alembic_version")
            row = cur.fetchone()
            current = row[0] if row else None
        if has_meta:
            cur.execute("SELECT value FROM meta WHERE key = 'schema_oldest_compatible'")
            row = cur.fetchone()
            oldest = row[0] if row else None
    conn.rollback()
    return SchemaState(current, head(), oldest)


def _engine(dsn: str, connect_kwargs: dict):
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    return create_engine("postgresql+psycopg://", creator=lambda: psycopg.connect(dsn, **connect_kwargs),
                         poolclass=NullPool)


def _wait_for_lock(conn, text) -> None:
    """Take the migration lock, polling with pg_try_advisory_lock. Not
    pg_advisory_lock: a session waiting inside a statement holds a transaction id,
    and ``CREATE INDEX CONCURRENTLY`` in the migration of whoever holds the lock
    waits for every such transaction — a deadlock between two starting replicas."""
    import time

    while True:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": MIGRATE_LOCK}).scalar()
        conn.commit()
        if got:
            return
        time.sleep(0.2)


def upgrade(dsn: str, connect_kwargs: dict | None = None, target: str = "head") -> tuple[str | None, str]:
    """Apply pending migrations under the advisory lock; returns (from, to)."""
    from sqlalchemy import text

    engine = _engine(dsn, connect_kwargs or {})
    try:
        with engine.connect() as conn:
            _wait_for_lock(conn, text)
            try:
                conn.execute(text(f"SET lock_timeout = '{LOCK_TIMEOUT}'"))
                conn.commit()
                raw = conn.connection.driver_connection
                before = state(raw)
                if before.newer:
                    return before.current, before.current
                if before.current != head() or target != "head":
                    log.info("migrating the PostgreSQL schema from %s to %s", before.current or "empty", target)
                    cfg = alembic_config()
                    cfg.attributes["connection"] = conn
                    command.upgrade(cfg, target)
                    conn.commit()
                return before.current, state(raw).current
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATE_LOCK})
                conn.commit()
    finally:
        engine.dispose()


def upgrade_sql(current: str | None, out) -> None:
    """The SQL of the pending migrations, for a DBA to review (nothing is run)."""
    out.write(f"-- Tocsin schema upgrade from {current or 'an empty database'} to {head()}\n")
    out.write(f"SET lock_timeout = '{LOCK_TIMEOUT}';\n")
    cfg = alembic_config(out)
    command.upgrade(cfg, f"{current}:head" if current else "head", sql=True)


def history() -> list[tuple[str, str | None, str]]:
    """(revision, down revision, first line of its description), oldest first."""
    out = []
    for r in reversed(list(script().walk_revisions())):
        out.append((r.revision, r.down_revision, (r.doc or "").strip().splitlines()[0] if r.doc else ""))
    return out
