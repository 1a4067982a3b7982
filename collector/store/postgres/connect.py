"""Connecting to PostgreSQL: settings, the connection pool, and errors a user can
act on. The DSN's password is never logged: messages name host, port and
database only (``describe``)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import psycopg
from psycopg.conninfo import conninfo_to_dict

from collector.store.base import StoreError, StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PgSettings:
    dsn: str
    pool_size: int = 8
    statement_timeout_s: float = 30.0
    connect_timeout_s: float = 5.0
    migrate: str = "auto"             # auto | check
    application_name: str = "tocsin"

    def connect_kwargs(self) -> dict:
        kw: dict = {"application_name": self.application_name}
        if "connect_timeout" not in conninfo_to_dict(self.dsn):
            kw["connect_timeout"] = max(1, int(round(self.connect_timeout_s)))
        return kw


def describe(dsn: str) -> str:
    """``host:port/dbname`` (hosts joined with commas); never the password."""
    try:
        d = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    hosts = (d.get("host") or d.get("hostaddr") or "localhost").split(",")
    ports = (d.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    where = ",".join(f"{h}:{p}" for h, p in zip(hosts, ports))
    return f"{where}/{d.get('dbname') or d.get('user') or 'postgres'}"


def one_line(e: BaseException) -> str:
    """libpq's messages span lines ("connection ... failed: ...\\n\\tIs the server
    running ..."): the first line is the one that says what happened."""
    text = str(e).strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


def check_dsn(dsn: str) -> None:
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as e:
        raise StoreError(f"storage.postgresql: the DSN cannot be parsed ({one_line(e).split(':')[0]}); "
                         "expected postgresql://user@host:port/db or 'host=... dbname=...'") from None


def first_connect(settings: PgSettings, wait_s: float = 0.0) -> psycopg.Connection:
    """Connect once; with ``wait_s`` > 0 retry with backoff for that long.
    Raises StoreUnavailable with one line naming host:port and what to check."""
    check_dsn(settings.dsn)
    where = describe(settings.dsn)
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        try:
            return psycopg.connect(settings.dsn, autocommit=True, **settings.connect_kwargs())
        except psycopg.OperationalError as e:
            reason = one_line(e)
            if time.monotonic() + delay > deadline:
                hint = "" if wait_s else "; or start with --wait to retry until it is"
                raise StoreUnavailable(
                    f"cannot connect to PostgreSQL at {where}: {_short(reason)}. Check that it is running and "
                    f"reachable and that storage.postgresql.dsn_env/dsn_file point at it{hint}") from None
            log.warning("PostgreSQL at %s is not reachable (%s); retrying in %.0f s", where, _short(reason), delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)


def _short(reason: str) -> str:
    # 'connection to server at "127.0.0.1", port 1 failed: Connection refused' -> keep the cause
    return reason.rsplit(" failed: ", 1)[1] if " failed: " in reason else reason


RECONNECT_MAX_DELAY = 2.0   # seconds between two attempts to reconnect a pooled connection, at most


def _cap_pool_backoff() -> None:
    """psycopg_pool retries a lost connection with a doubling delay and no ceiling:
    after a 20 s outage the next attempt came up to 16 s after PostgreSQL was back,
    after an hour's outage an hour later — flushes, the cluster's election and
    rules waited that long. Cap the delay (the class has no setting for it)."""
    import psycopg_pool.pool as pool_mod
    from psycopg_pool.base import AttemptWithBackoff

    if getattr(pool_mod.AttemptWithBackoff, "capped", False):
        return

    class CappedBackoff(AttemptWithBackoff):
        capped = True

        def update_delay(self, now: float) -> None:
            super().update_delay(now)
            self.delay = min(self.delay, RECONNECT_MAX_DELAY)

    pool_mod.AttemptWithBackoff = CappedBackoff


def make_pool(settings: PgSettings):
    from psycopg_pool import ConnectionPool

    _cap_pool_backoff()
    timeout_ms = int(settings.statement_timeout_s * 1000)

    def configure(conn: psycopg.Connection) -> None:
        conn.execute(f"SET statement_timeout = {timeout_ms}")
        conn.commit()

    pool = ConnectionPool(settings.dsn, kwargs=settings.connect_kwargs(), min_size=1,
                          max_size=max(1, settings.pool_size), open=False, configure=configure,
                          check=ConnectionPool.check_connection, timeout=max(settings.connect_timeout_s, 1.0),
                          reconnect_timeout=3600 * 24 * 365, name="tocsin")
    pool.open(wait=True, timeout=max(settings.connect_timeout_s, 1.0) + 5)
    return pool
