"""HTTP routes for silences, shaped like Alertmanager's API v2:
GET /api/v1/silences (a JSON array of silences), POST /api/v1/silences
(a PostableSilence; answers {"silenceID": id}), DELETE /api/v1/silences/{id}."""
from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .matchers import parse_matchers
from .silences import SilenceError, silence_from_api


def _error(status: int, msg: str) -> JSONResponse:
    return JSONResponse({"status": "error", "error": msg}, status_code=status)


def routes(ctx) -> list[Route]:
    def silences():
        return ctx.notifier.silences

    async def get_silences(request: Request) -> Response:
        now = ctx.notifier.clock()
        items = silences().list()
        flt = request.query_params.getlist("filter")
        if flt:
            # Alertmanager semantics: keep silences whose matchers include each filter matcher.
            try:
                wanted = [m for f in flt for m in parse_matchers(f)]
            except ValueError as e:
                return _error(400, f"filter: {e}")
            items = [s for s in items if all(w in s.matchers for w in wanted)]
        return JSONResponse([s.to_api(now) for s in items])

    async def post_silence(request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"null")
        except json.JSONDecodeError as e:
            return _error(400, f"body is not JSON: {e}")
        try:
            s = silences().set(silence_from_api(body, ctx.notifier.clock()))
        except SilenceError as e:
            return _error(404 if str(e).startswith("no silence") else 400, str(e))
        return JSONResponse({"silenceID": s.id})

    async def silences_endpoint(request: Request) -> Response:
        return await (get_silences(request) if request.method == "GET" else post_silence(request))

    async def delete_silence(request: Request) -> Response:
        try:
            silences().expire(request.path_params["silence_id"])
        except SilenceError as e:
            return _error(404, str(e))
        return Response(status_code=200)

    async def get_silence(request: Request) -> Response:
        s = silences().get(request.path_params["silence_id"])
        if s is None:
            return _error(404, f"no silence with id {request.path_params['silence_id']!r}")
        return JSONResponse(s.to_api(ctx.notifier.clock()))

    return [
        Route("/api/v1/silences", silences_endpoint, methods=["GET", "POST"]),
        Route("/api/v1/silences/{silence_id}", get_silence, methods=["GET"]),
        Route("/api/v1/silences/{silence_id}", delete_silence, methods=["DELETE"]),
    ]

