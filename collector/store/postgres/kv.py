"""The documents of the alerting side in PostgreSQL: the one module that reads
and writes table ``kv``. Every function takes a connection (or cursor) that is
already in a transaction, so callers can combine documents with other writes:
the flush writes the receivers' temporality state with the data and the WAL
marker; the cluster (issue 11) will claim outbox entries here, checking the
leader's fencing epoch in the same transaction.
"""
from __future__ import annotations

import json
from typing import Any

from collector.store.postgres.queries import load

Q = load("kv.sql")


def put_many(cur, namespace: str, items: dict[str, dict[str, Any]]) -> None:
    if not items:
        return
    cur.execute(Q["put_many"], {"namespace": namespace, "keys": list(items),
                                "values": [json.dumps(v, sort_keys=True) for v in items.values()]})


def get(cur, namespace: str, key: str) -> dict[str, Any] | None:
    cur.execute(Q["get"], {"namespace": namespace, "key": key})
    row = cur.fetchone()
    return row[0] if row else None


def list_all(cur, namespace: str) -> dict[str, dict[str, Any]]:
    cur.execute(Q["list"], {"namespace": namespace})
    return {k: v for k, v in cur.fetchall()}


def delete(cur, namespace: str, key: str) -> None:
    cur.execute(Q["delete"], {"namespace": namespace, "key": key})


def namespaces(cur) -> dict[str, int]:
    cur.execute(Q["list_namespaces"])
    return dict(cur.fetchall())
