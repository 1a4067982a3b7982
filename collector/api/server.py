"""The HTTP API on 9099: health and self-metrics, and the routes each area
contributes (Prometheus query API; rules, alerts and reload; silences)."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


def make_api_app(ctx) -> Starlette:
    from alerting.evaluate.api import routes as rule_routes
    from alerting.notify.api import routes as silence_routes
    from alerting.notify.api_v2 import routes as alertmanager_routes
    from collector.api.prom import routes as prom_routes
    from collector.api.status import routes as status_routes
    from collector.cluster.status import routes as cluster_routes
    from collector.receiver.remote_write import routes as remote_write_routes

    async def healthy(_: Request) -> Response:
        return PlainTextResponse("Tocsin is Healthy.\n")

    async def ready(_: Request) -> Response:
        reasons = ctx.not_ready() if hasattr(ctx, "not_ready") else []
        if reasons:   # e.g. PostgreSQL down: a load balancer sends traffic elsewhere meanwhile
            return PlainTextResponse("Tocsin is not ready: " + "; ".join(reasons) + "\n", status_code=503)
        return PlainTextResponse("Tocsin is Ready.\n")

    async def metrics(_: Request) -> Response:
        ctx.metrics.series_active.set(ctx.aggregator.series_count())
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/-/healthy", healthy, methods=["GET", "HEAD"]),
        Route("/-/ready", ready, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET"]),
        *cluster_routes(ctx),
        *status_routes(ctx),   # before the query API: its runtimeinfo is the real one
        *prom_routes(ctx),
        *rule_routes(ctx),
        *silence_routes(ctx),
        *alertmanager_routes(ctx),
        *remote_write_routes(ctx),
    ]
    return Starlette(routes=routes)
