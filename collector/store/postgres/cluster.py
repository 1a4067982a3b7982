"""The cluster's coordination in PostgreSQL (docs/cluster.md), the only code that
touches tables ``cluster_replicas`` and ``cluster_leader``. SQL in sql/cluster.sql.

- Heartbeat rows: each replica upserts its row every heartbeat interval with
  PostgreSQL's clock (``clock_timestamp()``), so liveness and flush watermarks
  are compared on one clock, whatever the replicas' clocks say.
- Leadership: a session advisory lock on a connection of its own
  (``LeaderSession``, never from the pool), with ``idle_session_timeout`` so the
  server ends the session of a leader that froze or was cut off, and TCP
  keepalives. Taking the lock is followed by a transaction that increments the
  epoch: the fencing token.
- Fencing: ``fence(cur, epoch)`` is the first statement of every transaction
  in which the leader changes shared alerting state; it reads the epoch
  ``FOR SHARE`` and raises ``Fenced`` unless it is the caller's. ``claim`` also
  locks an outbox entry for the rest of the transaction (``SKIP LOCKED``).
- ``Listener``: a connection of its own that LISTENs (shared documents changed)
  and holds the replica-id lock, so two live processes never share an id.
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg
from psycopg.types.json import Jsonb

from collector.model import Series
from collector.store.base import Fenced, StoreUnavailable
from collector.store.postgres import kv
from collector.store.postgres.connect import describe, one_line
from collector.store.postgres.queries import load

log = logging.getLogger(__name__)

Q = load("cluster.sql")
LEADER_LOCK = 0x746F6373696E4C   # "tocsinL": the leader's session advisory lock
REPLICA_LOCK_SPACE = 0x74637372   # the replica-id locks' key space (two-key form)
KV_CHANNEL = "tocsin_kv"


@dataclass(frozen=True)
class ReplicaRow:
    replica: str
    instance: str
    address: str
    version: str
    conditions: dict
    started_at: float           # unix seconds (server clock)
    heartbeat_at: float
    flushed_through: float | None
    heartbeat_age: float        # seconds, server clock
    flush_lag: float | None     # seconds since its flush watermark, server clock


@dataclass(frozen=True)
class LeaderRow:
    epoch: int
    replica: str                # "" before the first leader
    since: float | None
    age: float | None           # seconds since it took over


def fence(cur, epoch: int) -> None:
    """Raise ``Fenced`` unless ``epoch`` is the current one. Call first in a
    transaction; the row stays share-locked until it ends (see sql/cluster.sql)."""
    cur.execute(Q["fence"])
    current = int(cur.fetchone()[0])
    if current != epoch:
        raise Fenced(f"not the leader any more: epoch {epoch} is over (the current one is {current})")


@dataclass
class Claim:
    """An outbox entry held by this transaction (see ``claim``)."""
    state: str                          # claimed | busy | gone
    value: dict[str, Any] | None
    _cur: Any = None

    def apply(self, puts: dict[str, dict[str, dict]], deletes: dict[str, list[str]]) -> None:
        """Record the outcome in the same transaction as the claim."""
        kv.apply(self._cur, puts, deletes)


def claim(cur, namespace: str, key: str, epoch: int, hold_s: float) -> Claim:
    """Check the epoch (without locking the leader row: a takeover must not wait
    for an HTTP call in flight), then lock the entry. An entry held by another
    transaction — a stalled former leader's — is "busy": that transaction either
    commits its send or dies (``idle_in_transaction_session_timeout``), never both
    sends."""
    cur.execute("SELECT set_config('idle_in_transaction_session_timeout', %s, true)", [str(int(hold_s * 1000))])
    cur.execute(Q["peek_epoch"])
    current = int(cur.fetchone()[0])
    if current != epoch:
        raise Fenced(f"not the leader any more: epoch {epoch} is over (the current one is {current})")
    state, value = kv.claim(cur, namespace, key)
    return Claim(state, value, cur)


def _series(rows) -> tuple[list[Series], int]:
    out, xmin = [], 0
    for sid, metric, labels, kind, unit, help_, x in rows:
        xmin = int(x)
        if sid is not None:
            out.append(Series(int(np.int64(sid).view(np.uint64)), metric, tuple(sorted(labels.items())), kind,
                              unit, help_))
    return out, xmin


class ClusterStore:
    """The cluster's queries over the store's pool (short transactions), and the
    two dedicated sessions (leader lock, listener)."""

    def __init__(self, store):
        self.store = store

    def _run(self, name: str, params: dict | None = None, fetch: str = "none"):
        with self.store._conn() as conn:
            cur = conn.execute(Q[name], params or {})
            out = cur.fetchall() if fetch == "all" else cur.fetchone() if fetch == "one" else None
            conn.commit()
            return out

    def heartbeat(self, replica: str, instance: str, flushed_age: float | None, address: str, version: str,
                  conditions: dict) -> None:
        self._run("heartbeat", {"replica": replica, "instance": instance, "flushed_age": flushed_age,
                                "address": address, "version": version, "conditions": Jsonb(conditions)})

    def leave(self, replica: str, instance: str) -> None:
        self._run("leave", {"replica": replica, "instance": instance})

    def prune(self, older_than_s: float) -> None:
        self._run("prune", {"older_than": older_than_s})

    def replicas(self) -> list[ReplicaRow]:
        return [ReplicaRow(r[0], r[1], r[2], r[3], dict(r[4] or {}), r[5], r[6], r[7], r[8], r[9])
                for r in self._run("replicas", fetch="all")]

    def leader(self) -> LeaderRow:
        epoch, replica, since, age = self._run("leader", fetch="one")
        return LeaderRow(int(epoch), replica, since, age)

    def watermark_lag(self, live_within_s: float) -> tuple[float, int]:
        """(seconds the slowest live replica's flush watermark is behind now —
        inf when one has stored nothing yet —, live replicas)."""
        lag, n = self._run("watermark_lag", {"live_within": live_within_s}, fetch="one")
        return (float(lag) if lag is not None else 0.0), int(n)

    def xmin(self) -> int:
        return int(self._run("xmin", fetch="one")[0])

    def series_since(self, xmin: int) -> tuple[list[Series], int]:
        """Series created at or after transaction ``xmin``, and the xmin to pass next time."""
        return _series(self._run("series_since", {"xmin": xmin}, fetch="all"))

    def leader_session(self, replica: str, idle_s: float, application_name: str) -> "LeaderSession":
        return LeaderSession(self.store.settings, replica, idle_s, application_name)

    def listener(self, replica: str) -> "Listener":
        return Listener(self.store.settings, replica)


def _dedicated(settings, *, idle_s: float | None = None):
    """A connection outside the pool, with TCP keepalives (and a TCP user timeout)
    so a dead network is noticed in seconds, not hours."""
    params = dict(settings.connect_kwargs())
    if idle_s is not None:
        probe = max(1, int(idle_s / 4))
        params.update(keepalives=1, keepalives_idle=probe, keepalives_interval=probe, keepalives_count=3,
                      tcp_user_timeout=int(idle_s * 1000))
    return psycopg.connect(settings.dsn, autocommit=True, **params)


class LeaderSession:
    """The leader's advisory lock on a connection of its own. Not thread-safe:
    one thread (the cluster's leadership loop) uses it."""

    def __init__(self, settings, replica: str, idle_s: float, application_name: str):
        self.settings, self.replica, self.idle_s = settings, replica, idle_s
        self.application_name = application_name
        self.conn: psycopg.Connection | None = None
        self.where = describe(settings.dsn)

    def _connect(self) -> psycopg.Connection:
        conn = _dedicated(self.settings, idle_s=self.idle_s)
        probe = str(max(1, int(self.idle_s / 4)))
        conn.execute(Q["leader_session_settings"], {
            "idle_ms": str(int(self.idle_s * 1000)), "ka_idle": probe, "ka_interval": probe,
            "statement_ms": str(int(self.idle_s * 1000)), "application_name": self.application_name})
        return conn

    def try_acquire(self) -> int | None:
        """Take the lock if it is free and become leader: the new epoch, or None."""
        try:
            if self.conn is None or self.conn.closed:
                self.conn = self._connect()
            if not self.conn.execute(Q["try_leader_lock"], {"key": LEADER_LOCK}).fetchone()[0]:
                return None
            with self.conn.transaction():
                epoch = int(self.conn.execute(Q["take_over"], {"replica": self.replica}).fetchone()[0])
            return epoch
        except psycopg.Error as e:
            self.close()
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {one_line(e)}") from None

    def confirm(self, epoch: int) -> bool:
        """Still the leader at ``epoch``: the session (and so its lock) is alive
        and nobody took over. False, or StoreUnavailable, means no longer."""
        try:
            row = self.conn.execute(Q["confirm"]).fetchone()
        except (psycopg.Error, AttributeError) as e:
            self.close()
            raise StoreUnavailable(f"PostgreSQL at {self.where}: {one_line(e)}") from None
        return int(row[0]) == epoch and row[1] == self.replica

    def release(self) -> None:
        """Give the lock back now (a clean shutdown: the next leader need not wait)."""
        if self.conn is not None and not self.conn.closed:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute(Q["release_leader_lock"], {"key": LEADER_LOCK})
        self.close()

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


class Listener:
    """LISTEN on ``tocsin_kv`` (silences and posted alerts changed) and the
    replica-id lock, on one connection. ``wait(timeout)`` returns the payloads
    received (namespaces); after a lost connection it reconnects and returns
    ``{"*"}`` (anything may have changed meanwhile)."""

    def __init__(self, settings, replica: str):
        self.settings, self.replica = settings, replica
        self.conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def open(self) -> bool:
        """Connect, take the replica lock, LISTEN. False when another live process
        holds this replica id."""
        self.close()
        try:
            conn = _dedicated(self.settings, idle_s=30.0)
            ok = conn.execute(Q["replica_lock"], {"space": REPLICA_LOCK_SPACE, "replica": self.replica}).fetchone()[0]
            if not ok:
                conn.close()
                return False
            conn.execute(f"LISTEN {KV_CHANNEL}")
        except psycopg.Error as e:
            raise StoreUnavailable(f"PostgreSQL at {describe(self.settings.dsn)}: {one_line(e)}") from None
        self.conn = conn
        return True

    def wait(self, timeout: float) -> set[str]:
        """Payloads received within ``timeout`` seconds (returns at the first)."""
        conn = self.conn
        if conn is None or conn.closed:
            raise StoreUnavailable("the listener connection is closed")
        try:
            got = {n.payload for n in conn.notifies(timeout=timeout, stop_after=1)}
            if got:   # others committed together come right after
                got |= {n.payload for n in conn.notifies(timeout=0.02)}
            return got
        except psycopg.Error as e:
            self.close()
            raise StoreUnavailable(f"listener: {one_line(e)}") from None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
