"""Prometheus's status endpoints that Grafana and tools call:
``/api/v1/status/config``, ``/flags``, ``/runtimeinfo``, ``/tsdb`` (series
counts by metric and by label: cardinality), ``/api/v1/format_query`` and
``/api/v1/targets`` (Tocsin scrapes nothing: always empty). Same JSON shapes
as Prometheus."""
from __future__ import annotations

import io
import os
import threading
import time
from collections import Counter
from urllib.parse import parse_qsl

from ruamel.yaml import YAML
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from collector.durations import format_duration

_STARTED = time.time()


def _ok(data) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _bad(msg: str) -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": "bad_data", "error": msg}, status_code=400)


def _rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


def config_yaml(config) -> str:
    """The running configuration. tocsin.yaml holds no secrets (only *_env and
    *_file references); inline secrets of an alertmanager.yml live outside the
    dumped model, so nothing secret can appear here."""
    buf = io.StringIO()
    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.dump(config.model_dump(mode="json", by_alias=True), buf)
    return buf.getvalue()


def flags(ctx) -> dict[str, str]:
    """Tocsin's settings under the names of the Prometheus flags they stand for."""
    c = ctx.config
    return {
        "config.file": str(getattr(ctx, "config_path", "") or ""),
        "web.listen-address": c.api.listen,
        "web.external-url": c.api.external_url,
        "storage.tsdb.path": c.storage.path,
        "storage.tsdb.retention.time": format_duration(c.storage.retention.raw),
        "query.lookback-delta": format_duration(c.query.lookback_delta),
        "query.timeout": format_duration(c.query.timeout),
        "query.max-samples": str(c.query.max_samples),
        "rules.alert.resend-delay": format_duration(c.rules.evaluation_interval),
        "web.enable-remote-write-receiver": "true",
        "web.enable-lifecycle": "true",
        "otlp.grpc.listen-address": c.receivers.otlp.grpc.listen,
        "otlp.http.listen-address": c.receivers.otlp.http.listen,
    }


def tsdb_stats(series, limit: int) -> dict:
    """Prometheus's /api/v1/status/tsdb answer over the catalog's series."""
    by_metric: Counter = Counter()
    values_by_label: dict[str, set] = {}
    by_pair: Counter = Counter()
    bytes_by_label: Counter = Counter()
    pairs: set = set()
    n = 0
    for s in series:
        n += 1
        by_metric[s.metric] += 1
        for k, v in (("__name__", s.metric), *s.labels):
            values_by_label.setdefault(k, set()).add(v)
            by_pair[f"{k}={v}"] += 1
            pairs.add((k, v))
    for k, vals in values_by_label.items():
        bytes_by_label[k] = sum(len(v.encode()) for v in vals)

    def top(counter: Counter) -> list[dict]:
        return [{"name": k, "value": v} for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]

    return {"headStats": {"numSeries": n, "numLabelPairs": len(pairs), "chunkCount": 0, "minTime": 0, "maxTime": 0},
            "seriesCountByMetricName": top(by_metric),
            "labelValueCountByLabelName": top(Counter({k: len(v) for k, v in values_by_label.items()})),
            "memoryInBytesByLabelName": top(bytes_by_label),
            "seriesCountByLabelValuePair": top(by_pair)}


def routes(ctx) -> list[Route]:
    async def status_config(request: Request):
        return _ok({"yaml": config_yaml(ctx.config)})

    async def status_flags(request: Request):
        return _ok(flags(ctx))

    async def runtimeinfo(request: Request):
        reload = getattr(ctx, "last_reload", None) or (_STARTED, True)
        wal = getattr(ctx, "wal", None)
        st = ctx.config.storage.retention
        return _ok({
            "startTime": _rfc3339(getattr(ctx, "started_at", _STARTED)), "CWD": os.getcwd(),
            "reloadConfigSuccess": bool(reload[1]), "lastConfigTime": _rfc3339(reload[0]),
            "corruptionCount": int(getattr(wal, "torn_records", 0) or 0),
            "goroutineCount": threading.active_count(), "GOMAXPROCS": os.cpu_count() or 1,
            "GOMEMLIMIT": ctx.config.limits.memory.hard_limit_mib * 1024 * 1024, "GOGC": "", "GODEBUG": "",
            "storageRetention": f"{format_duration(st.raw)} (10s slots), {format_duration(st.minute)} (1m), "
                                f"{format_duration(st.hour)} (1h)",
            "timeSeriesCount": len(ctx.catalog.all())})

    async def tsdb(request: Request):
        text = request.query_params.get("limit", "10")
        try:
            limit = int(text)
            if limit < 1:
                raise ValueError
        except ValueError:
            return _bad(f"invalid parameter \"limit\": {text!r} is not a positive number")
        return _ok(tsdb_stats(ctx.catalog.all(), limit))

    async def format_query(request: Request):
        import promql_parser

        params = dict(request.query_params)
        if request.method == "POST":
            params.update(parse_qsl((await request.body()).decode("utf-8", "replace")))
        expr = params.get("query")
        if not expr:
            return _bad("invalid parameter \"query\": missing query")
        try:
            return _ok(promql_parser.parse(expr).prettify())
        except Exception as e:   # promql_parser raises ValueError-like errors with the parser's text
            return _bad(f"invalid parameter \"query\": {e}")

    async def targets(request: Request):
        return _ok({"activeTargets": [], "droppedTargets": []})

    return [
        Route("/api/v1/status/config", status_config, methods=["GET"]),
        Route("/api/v1/status/flags", status_flags, methods=["GET"]),
        Route("/api/v1/status/runtimeinfo", runtimeinfo, methods=["GET"]),
        Route("/api/v1/status/tsdb", tsdb, methods=["GET"]),
        Route("/api/v1/format_query", format_query, methods=["GET", "POST"]),
        Route("/api/v1/targets", targets, methods=["GET"]),
    ]
