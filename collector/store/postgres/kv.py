"""The documents of the alerting side in PostgreSQL: the one module that reads
and writes table ``kv``. Every function takes a connection (or cursor) that is
already in a transaction, so callers can combine documents with other writes:
the flush writes the receivers' temporality state with the data and the WAL
marker; the cluster's leader claims outbox entries here (``claim``), with the
fencing epoch checked in the same transaction (``cluster.fence``).
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


def put_new(cur, namespace: str, key: str, value: dict[str, Any]) -> bool:
    """Write ``value`` unless the key exists; True when this call wrote it."""
    cur.execute(Q["put_new"], {"namespace": namespace, "key": key, "value": json.dumps(value, sort_keys=True)})
    return cur.fetchone() is not None


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


def delete_many(cur, namespace: str, keys: list[str]) -> None:
    if keys:
        cur.execute(Q["delete_many"], {"namespace": namespace, "keys": list(keys)})


def apply(cur, puts: dict[str, dict[str, dict[str, Any]]], deletes: dict[str, list[str]]) -> None:
    """Puts and deletes of several namespaces, in the caller's transaction."""
    for namespace, items in puts.items():
        put_many(cur, namespace, items)
    for namespace, keys in deletes.items():
        delete_many(cur, namespace, keys)


def claim(cur, namespace: str, key: str) -> tuple[str, dict[str, Any] | None]:
    """Lock one document for the rest of the transaction: ("claimed", value),
    ("busy", None) when another transaction holds it, ("gone", None) when it no
    longer exists."""
    cur.execute(Q["claim"], {"namespace": namespace, "key": key})
    row = cur.fetchone()
    if row is not None:
        return "claimed", row[0]
    cur.execute(Q["exists"], {"namespace": namespace, "key": key})
    return ("busy" if cur.fetchone()[0] else "gone"), None
