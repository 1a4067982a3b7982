"""A real PostgreSQL for the tests: ``initdb`` + ``pg_ctl`` in a temporary
directory, on a free loopback port.

PostgreSQL refuses to run as root (CI runs as root), so when we are root the
server runs as the ``postgres`` user (``runuser -u postgres --``) in a directory
it owns. The binaries come from PATH or from Debian's ``/usr/lib/postgresql/*/bin``.

Tests get one cluster per pytest(-xdist) worker per session and a fresh database
per test, copied from a migrated template (``CREATE DATABASE ... TEMPLATE``), see
``tests/conftest.py``. Fault tests that stop the server start a cluster of their own.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "postgres"
_db_counter = itertools.count(1)


class PgUnavailable(RuntimeError):
    """PostgreSQL's server binaries are missing or the server cannot start."""


def find_bin(name: str) -> str | None:
    """``initdb``/``pg_ctl``/... on PATH, else the newest Debian install."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """One PostgreSQL server. ``start()``, ``stop()`` (fast shutdown), ``kill()``
    (immediate), ``dsn(db)``, ``create_database(name, template)``."""

    def __init__(self, port: int | None = None):
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
                                "/usr/lib/postgresql/*/bin: install Debian's postgresql package")
        self.as_root = os.geteuid() == 0
        if self.as_root and not shutil.which("runuser"):
            raise PgUnavailable("running as root and runuser is missing: PostgreSQL cannot run as root")
        self.base = Path(tempfile.mkdtemp(prefix="tocsin-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sock"
        self.sockets.mkdir()
        self.log = self.base / "server.log"
        self.port = port or _free_port()
        if self.as_root:
            shutil.chown(self.base, SUPERUSER, SUPERUSER)
            shutil.chown(self.sockets, SUPERUSER, SUPERUSER)
            os.chmod(self.base, 0o755)
        self._run([self.initdb, "-D", str(self.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                   "--locale=C", "--no-sync"])
        with open(self.data / "pg_hba.conf", "w") as f:
            # a user with a password, for the tests that check the password is never logged
            f.write("local all all trust\n"
                    "host all tocsin_pw 127.0.0.1/32 scram-sha-256\n"
                    "host all all 127.0.0.1/32 trust\n")
        self.running = False

    def _run(self, argv: list[str], check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        if self.as_root:
            argv = ["runuser", "-u", SUPERUSER, "--"] + argv
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise PgUnavailable(f"{' '.join(argv)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}\n"
                                f"{self.log.read_text() if self.log.exists() else ''}")
        return p

    def start(self, durable: bool = False) -> "PgCluster":
        """``durable``: PostgreSQL's own settings (fsync on; benchmarks). Tests run
        without fsync: they stop the server cleanly or test our side of a crash."""
        speed = "" if durable else "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sockets} "
                f"{speed}-c shared_buffers={'256MB' if durable else '32MB'} "
                "-c max_connections=200 -c max_locks_per_transaction=256 -c log_min_messages=warning "
                "-c logging_collector=off")
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", opts, "start"])
        self.running = True
        return self

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], check=False)
            self.running = False

    def kill(self) -> None:
        """Stop at once, as a crash would (``immediate``: no checkpoint, clients cut)."""
        self.stop("immediate")

    def allow_replication(self) -> None:
        """Let a streaming standby on loopback connect (pg_basebackup, walreceiver)."""
        with open(self.data / "pg_hba.conf", "a") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        self.sql("SELECT pg_reload_conf()")

    def standby(self) -> "PgCluster":
        """A streaming standby of this (running) server, on a port of its own:
        ``pg_basebackup -R`` into a new directory, started. ``promote()`` it."""
        sb = PgCluster.__new__(PgCluster)
        sb.initdb, sb.pg_ctl, sb.as_root = self.initdb, self.pg_ctl, self.as_root
        sb.base = Path(tempfile.mkdtemp(prefix="tocsin-pg-standby-"))
        sb.data, sb.sockets, sb.log = sb.base / "data", sb.base / "sock", sb.base / "server.log"
        sb.sockets.mkdir()
        sb.port = _free_port()
        sb.running = False
        if sb.as_root:
            shutil.chown(sb.base, SUPERUSER, SUPERUSER)
            shutil.chown(sb.sockets, SUPERUSER, SUPERUSER)
            os.chmod(sb.base, 0o755)
        basebackup = find_bin("pg_basebackup")
        if not basebackup:
            raise PgUnavailable("pg_basebackup not found: install Debian's postgresql package")
        sb._run([basebackup, "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-D", str(sb.data),
                 "-R", "-X", "stream", "--no-sync", "--checkpoint=fast"])
        return sb.start()

    def promote(self) -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-w", "-t", "60", "promote"])

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    # -- connecting -------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        s = f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"
        return s + (f" password={password}" if password else "")

    def sql(self, statement: str, dbname: str = "postgres", autocommit: bool = True):
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=autocommit) as con:
            cur = con.execute(statement)
            return cur.fetchall() if cur.description else None

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        name = name or f"t{os.getpid()}_{next(_db_counter)}"
        self.sql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while True:
            try:
                self.sql("SELECT 1")
                return
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)


def start_cluster(durable: bool = False) -> PgCluster:
    """A started cluster; a second port is tried if the first was taken meanwhile."""
    last: Exception | None = None
    for _ in range(3):
        c = PgCluster()
        try:
            return c.start(durable)
        except PgUnavailable as e:
            last = e
            c.destroy()
    raise PgUnavailable(str(last))
