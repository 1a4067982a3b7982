"""``tocsin db``: the PostgreSQL schema (Alembic) and moving a DuckDB store in.

    tocsin db upgrade [--sql]      apply pending migrations (or print their SQL for review)
    tocsin db current              the database's schema revision
    tocsin db history              every revision this tocsin knows
    tocsin db copy --from FILE     move a DuckDB store into the configured PostgreSQL

All read ``storage.postgresql`` from the config (``--config``, ``$TOCSIN_CONFIG``,
./tocsin.yaml); errors are one line, exit 1 (2 for a bad config file).
"""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("db", help="PostgreSQL schema (upgrade, current, history) and copying a DuckDB store in")
    dsub = p.add_subparsers(dest="db_command", required=True)

    def add(name: str, help: str, func):
        s = dsub.add_parser(name, help=help)
        s.add_argument("--config", help="config file (default: $TOCSIN_CONFIG, then ./tocsin.yaml)")
        s.set_defaults(func=func)
        return s

    u = add("upgrade", "apply pending schema migrations (under an advisory lock)", _upgrade)
    u.add_argument("--sql", action="store_true", help="print the SQL for a DBA to review instead of running it")
    add("current", "print the database's schema revision", _current)
    add("history", "list the schema revisions this tocsin knows", _history)
    c = add("copy", "copy a DuckDB store into the configured PostgreSQL (idempotent, with a count check)", _copy)
    c.add_argument("--from", dest="source", required=True, metavar="DUCKDB_FILE", help="the DuckDB file to copy")
    c.add_argument("--no-progress", action="store_true", help="no progress bar")


class _Fail(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _settings(args):
    from collector import assemble
    from collector.config import ConfigError, default_config_path, load_config
    from collector.store.base import StoreError

    try:
        cfg = load_config(args.config or default_config_path())
    except ConfigError as e:
        raise _Fail(str(e), 2) from None
    try:
        return cfg, assemble.postgres_settings(cfg, application_name="tocsin db")
    except StoreError as e:
        raise _Fail(str(e)) from None


def _run(fn, args) -> int:
    from collector.store.base import StoreError

    try:
        return fn(args)
    except _Fail as e:
        print(f"tocsin db: {e}", file=sys.stderr)
        return e.code
    except StoreError as e:
        print(f"tocsin db: {e}", file=sys.stderr)
        return 1


def _connect(settings):
    from collector.store.postgres.connect import first_connect

    return first_connect(settings)


def _upgrade(args) -> int:
    return _run(_do_upgrade, args)


def _do_upgrade(args) -> int:
    from collector.store.postgres import migrate
    from collector.store.postgres.connect import describe

    _, settings = _settings(args)
    where = describe(settings.dsn)
    if args.sql:
        from collector.store.base import StoreUnavailable

        current = None
        try:
            conn = _connect(settings)
            current = migrate.state(conn).current
            conn.close()
        except StoreUnavailable as e:
            print(f"tocsin db: {e}; printing the SQL from an empty database", file=sys.stderr)
        migrate.upgrade_sql(current, sys.stdout)
        return 0
    conn = _connect(settings)
    st = migrate.state(conn)
    conn.close()
    if st.newer:
        print(f"{where}: at {st.current}, newer than this tocsin's {st.head}; nothing to do")
        return 0 if st.usable else 1
    before, after = migrate.upgrade(settings.dsn, settings.connect_kwargs())
    if before == after:
        print(f"{where}: already at {after} (head)")
    else:
        print(f"{where}: upgraded from {before or 'an empty database'} to {after}")
    return 0


def _current(args) -> int:
    return _run(_do_current, args)


def _do_current(args) -> int:
    from collector.store.postgres import migrate
    from collector.store.postgres.connect import describe

    _, settings = _settings(args)
    conn = _connect(settings)
    st = migrate.state(conn)
    conn.close()
    where = describe(settings.dsn)
    if st.current is None:
        print(f"{where}: no Tocsin schema yet (run `tocsin db upgrade`)")
    elif st.current == st.head:
        print(f"{st.current} (head)")
    elif st.newer:
        compat = "compatible with" if st.usable else "too new for"
        print(f"{st.current} (newer than this tocsin's head {st.head}; {compat} it)")
    else:
        print(f"{st.current} (behind head {st.head}: run `tocsin db upgrade`)")
    return 0


def _history(args) -> int:
    from collector.store.postgres import migrate

    head = migrate.head()
    for rev, down, doc in reversed(migrate.history()):
        mark = " (head)" if rev == head else ""
        print(f"{down or '<base>'} -> {rev}{mark}, {doc}")
    return 0


def _copy(args) -> int:
    return _run(_do_copy, args)


def _do_copy(args) -> int:
    from collector import assemble
    from collector.store.postgres.copy import copy_from_duckdb, open_duckdb
    from collector.store.postgres.store import PostgresStore

    cfg, settings = _settings(args)
    open_duckdb(args.source).close()          # a bad file fails before anything is written
    store = PostgresStore(settings, assemble.retention(cfg))
    try:
        print(f"copying {args.source} into {store.describe()}", file=sys.stderr)
        report = copy_from_duckdb(args.source, store, progress=not args.no_progress)
    finally:
        store.close()
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    width = max((len(c.what) for c in report.checks), default=10)
    print(f"{'what':<{width}}  {'duckdb':>12}  {'postgresql':>12}")
    for c in report.checks:
        print(f"{c.what:<{width}}  {c.duckdb:>12}  {c.postgresql:>12}{'' if c.ok else '  MISMATCH'}")
    if not report.ok:
        print("tocsin db: the count check failed: PostgreSQL does not hold exactly what the file holds in the same "
              "time range (was tocsin already writing to this database?)", file=sys.stderr)
        return 1
    print("count check passed")
    return 0
