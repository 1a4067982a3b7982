"""``GET /api/v1/status/cluster``: the replicas (from the heartbeat table), their
last heartbeat and flush, the leader and its epoch, as this replica reads them
from PostgreSQL now. Without ``cluster.enabled``: ``{"enabled": false}``."""
from __future__ import annotations

import datetime as _dt

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from collector.store.base import StoreError


def _time(t: float | None) -> str | None:
    if t is None:
        return None
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cluster_status(node) -> dict:
    rows = node.cstore.replicas()
    leader = node.cstore.leader()
    t = node.timings
    replicas = []
    for r in rows:
        replicas.append({"replica": r.replica, "address": r.address, "version": r.version,
                         "startedAt": _time(r.started_at), "lastHeartbeat": _time(r.heartbeat_at),
                         "heartbeatAgeSeconds": round(r.heartbeat_age, 3), "live": r.heartbeat_age < t.failover,
                         "lastFlush": _time(r.flushed_through),
                         "flushLagSeconds": None if r.flush_lag is None else round(r.flush_lag, 3),
                         "leader": r.replica == leader.replica, "conditions": r.conditions})
    live = {r["replica"] for r in replicas if r["live"]}
    return {"enabled": True, "replica": node.replica, "isLeader": node.is_leader, "epoch": leader.epoch,
            "leader": {"replica": leader.replica or None, "epoch": leader.epoch, "since": _time(leader.since),
                       "live": leader.replica in live},
            "replicas": replicas,
            "timings": {"heartbeatIntervalSeconds": t.heartbeat, "failoverTimeoutSeconds": t.failover,
                        "visibilitySeconds": t.visibility, "evaluationWaitSeconds": t.evaluation_wait}}


def routes(ctx) -> list[Route]:
    async def status(_: Request):
        node = getattr(ctx, "cluster", None)
        if node is None:
            return JSONResponse({"status": "success", "data": {"enabled": False, "replicas": []}})
        try:
            data = await run_in_threadpool(cluster_status, node)
        except StoreError as e:
            return JSONResponse({"status": "error", "errorType": "unavailable", "error": str(e)}, status_code=503)
        return JSONResponse({"status": "success", "data": data})

    return [Route("/api/v1/status/cluster", status, methods=["GET"])]
