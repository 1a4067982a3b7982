"""Alertmanager's HTTP API v2 (api/v2/openapi.yaml of prometheus/alertmanager),
so ``amtool``, Grafana's Alertmanager data source and Prometheus's
``alerting.alertmanagers`` talk to Tocsin as to an Alertmanager:

  GET|POST /api/v2/alerts     GET /api/v2/alerts/groups
  GET|POST /api/v2/silences   GET|DELETE /api/v2/silence/{id}
  GET /api/v2/status          GET /api/v2/receivers

Silences are the same store as /api/v1/silences. Posted alerts go through the
same pipeline as those of Tocsin's own rules (route, group, inhibit, silence,
dedup, send). Errors are answered as Alertmanager does: a JSON string."""
from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from alerting.model import Alert

from .amexport import config_yaml
from .matchers import Matcher, matches_all, parse_matchers
from .silences import Silence, SilenceError, silence_from_api
from .types import parse_rfc3339, rfc3339

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class BadRequest(ValueError):
    pass


def _bad(msg: str, status: int = 400) -> JSONResponse:
    return JSONResponse(msg, status_code=status)


def _flag(request: Request, name: str, default: bool = True) -> bool:
    v = request.query_params.get(name)
    if v is None or v == "":
        return default
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise BadRequest(f"{name}: {v!r} is not a boolean")


def _filters(request: Request) -> list[Matcher]:
    try:
        return [m for f in request.query_params.getlist("filter") for m in parse_matchers(f)]
    except ValueError as e:
        raise BadRequest(f"bad matcher format: {e}") from None


def _receiver_re(request: Request) -> re.Pattern | None:
    text = request.query_params.get("receiver")
    if not text:
        return None
    try:
        return re.compile(f"^(?:{text})$")
    except re.error as e:
        raise BadRequest(f"failed to parse receiver param: {e}") from None


def gettable_alert(a: Alert, ends: float, updated: float, receivers: list[str], silenced_by: list[str],
                   inhibited_by: list[str]) -> dict[str, Any]:
    out = {"labels": dict(a.labels), "annotations": dict(a.annotations), "fingerprint": a.fingerprint,
           "startsAt": rfc3339(a.starts_at), "endsAt": rfc3339(ends), "updatedAt": rfc3339(updated),
           "receivers": [{"name": r} for r in receivers],
           "status": {"state": "suppressed" if silenced_by or inhibited_by else "active",
                      "silencedBy": silenced_by, "inhibitedBy": inhibited_by}}
    if a.generator_url:
        out["generatorURL"] = a.generator_url
    return out


def postable_alerts(body: Any, now: float, resolve_timeout: float) -> tuple[list[tuple[Alert, float]], list[str]]:
    """(alerts with the time each resolves, errors of the ones left out)."""
    if not isinstance(body, list):
        raise BadRequest("body must be a JSON array of alerts")
    ok: list[tuple[Alert, float]] = []
    errors: list[str] = []
    for i, item in enumerate(body):
        try:
            ok.append(_postable(item, now, resolve_timeout))
        except (BadRequest, ValueError, TypeError) as e:
            errors.append(f"alert {i}: {e}")
    return ok, errors


def _labelset(d: Any, what: str) -> dict[str, str]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise BadRequest(f"{what} must be an object of strings")
    out = {}
    for k, v in d.items():
        if not isinstance(v, str):
            raise BadRequest(f"{what}.{k}: value must be a string")
        if what == "labels" and not _LABEL_NAME.match(k):
            raise BadRequest(f"invalid label name {k!r}")
        out[str(k)] = v
    return out


def _postable(item: Any, now: float, resolve_timeout: float) -> tuple[Alert, float]:
    if not isinstance(item, dict):
        raise BadRequest("an alert must be a JSON object")
    labels = {k: v for k, v in _labelset(item.get("labels"), "labels").items() if v != ""}
    if not labels:
        raise BadRequest("at least one label pair required")
    annotations = _labelset(item.get("annotations"), "annotations")
    starts = parse_rfc3339(item.get("startsAt")) or now
    ends = parse_rfc3339(item.get("endsAt"))
    if ends and ends < starts:
        raise BadRequest("start time must be before end time")
    if not ends:
        ends = now + resolve_timeout
    alert = Alert(labels=labels, annotations=annotations, state="firing", starts_at=starts,
                  generator_url=str(item.get("generatorURL") or ""))
    return alert, ends


def silence_matches_filter(s: Silence, filters: list[Matcher]) -> bool:
    """Alertmanager's rule: the silence's matchers, read as a label set
    (name -> value or pattern), must satisfy every filter matcher."""
    as_labels = {m.name: m.value for m in s.matchers}
    return all(f.name in as_labels and f.matches(as_labels) for f in filters)


def _silence_order(s: Silence, now: float) -> tuple:
    # Alertmanager lists active silences first (ending soonest first), then
    # pending ones (starting soonest first), then expired ones (latest first).
    state = s.state(now)
    if state == "active":
        return (0, s.ends_at, s.id)
    if state == "pending":
        return (1, s.starts_at, s.id)
    return (2, -s.ends_at, s.id)


def routes(ctx) -> list[Route]:
    started = time.time()

    def notifier():
        return ctx.notifier

    def _alert_views(request: Request):
        n = notifier()
        now = n.clock()
        filters = _filters(request)
        recv = _receiver_re(request)
        active, silenced, inhibited = _flag(request, "active"), _flag(request, "silenced"), \
            _flag(request, "inhibited")
        _flag(request, "unprocessed")   # validated; Tocsin processes alerts as they arrive, none is unprocessed

        def view(a: Alert, ends: float, updated: float, receivers: list[str]) -> dict | None:
            if recv is not None and not any(recv.match(r) for r in receivers):
                return None
            if not matches_all(filters, a.labels):
                return None
            silenced_by, inhibited_by = n.suppression(a, now)
            if not active and not silenced_by and not inhibited_by:
                return None
            if not silenced and silenced_by:
                return None
            if not inhibited and inhibited_by:
                return None
            return gettable_alert(a, ends, updated, receivers, silenced_by, inhibited_by)
        return n, now, view

    async def get_alerts(request: Request) -> Response:
        try:
            n, _, view = _alert_views(request)
        except BadRequest as e:
            return _bad(str(e))
        out = []
        for a, ends, updated in n.active_alerts():
            v = view(a, ends, updated, n.receivers_of(a.labels))
            if v is not None:
                out.append(v)
        out.sort(key=lambda v: v["fingerprint"])
        return JSONResponse(out)

    async def post_alerts(request: Request) -> Response:
        n = notifier()
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _bad(f"body is not JSON: {e}")
        try:
            alerts, errors = postable_alerts(body, n.clock(), n.config.resolve_timeout)
        except BadRequest as e:
            return _bad(str(e))
        if alerts:
            n.post(alerts)
        if errors:   # the valid ones were kept, as Alertmanager does
            return _bad("; ".join(errors))
        return Response(status_code=200)

    async def get_groups(request: Request) -> Response:
        try:
            n, _, view = _alert_views(request)
        except BadRequest as e:
            return _bad(str(e))
        active = {a.fingerprint: (ends, updated) for a, ends, updated in n.active_alerts()}
        recv = _receiver_re(request)
        out = []
        for receiver, labels, alerts in n.groups():
            if recv is not None and not recv.match(receiver):
                continue
            views = []
            for a in alerts:
                if a.resolved or a.fingerprint not in active:
                    continue
                v = view(a, *active[a.fingerprint], n.receivers_of(a.labels))
                if v is not None:
                    views.append(v)
            if views:
                out.append({"labels": labels, "receiver": {"name": receiver},
                            "alerts": sorted(views, key=lambda v: v["fingerprint"])})
        return JSONResponse(out)

    async def get_silences(request: Request) -> Response:
        n = notifier()
        now = n.clock()
        try:
            filters = _filters(request)
        except BadRequest as e:
            return _bad(str(e))
        creators = request.query_params.getlist("creator")
        items = [s for s in n.silences.list() if silence_matches_filter(s, filters)
                 and (not creators or s.created_by in creators)]
        items.sort(key=lambda s: _silence_order(s, now))
        return JSONResponse([s.to_api(now) for s in items])

    async def post_silence(request: Request) -> Response:
        n = notifier()
        now = n.clock()
        try:
            body = json.loads(await request.body() or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return _bad(f"body is not JSON: {e}")
        try:
            s = silence_from_api(body, now)
        except SilenceError as e:
            return _bad(str(e))
        if s.ends_at < now:
            return _bad("end time can't be in the past")
        if s.starts_at < now:
            s = replace(s, starts_at=now)
        if s.id:
            old = n.silences.get(s.id)
            if old is None:
                return _bad(f"silence {s.id} not found", 404)
            if old.state(now) == "expired":   # an expired silence is not revived: a new one is made
                s = replace(s, id="")
        try:
            s = n.silences.set(s)
        except SilenceError as e:
            return _bad(str(e))
        return JSONResponse({"silenceID": s.id})

    async def silences_endpoint(request: Request) -> Response:
        return await (get_silences(request) if request.method == "GET" else post_silence(request))

    async def alerts_endpoint(request: Request) -> Response:
        return await (get_alerts(request) if request.method == "GET" else post_alerts(request))

    async def get_silence(request: Request) -> Response:
        n = notifier()
        s = n.silences.get(request.path_params["silence_id"])
        if s is None:
            return Response(status_code=404)
        return JSONResponse(s.to_api(n.clock()))

    async def delete_silence(request: Request) -> Response:
        try:
            notifier().silences.expire(request.path_params["silence_id"])
        except SilenceError as e:
            return _bad(str(e), 404)
        return Response(status_code=200)

    async def status(request: Request) -> Response:
        import collector
        version = getattr(collector, "__version__", "0.0.0")
        node = getattr(ctx, "cluster", None)
        if node is None:
            cluster = {"name": "", "status": "disabled", "peers": []}
        else:   # the replicas as this one last read them from the heartbeat table (docs/cluster.md)
            live = node.membership.live()
            cluster = {"name": node.replica, "status": "ready" if live else "settling",
                       "peers": [{"name": r.replica, "address": r.address} for r in live]}
        return JSONResponse({
            "cluster": cluster,
            "versionInfo": {"version": version, "revision": "", "branch": "", "buildUser": "", "buildDate": "",
                            "goVersion": ""},
            "config": {"original": config_yaml(notifier().config)},
            "uptime": rfc3339(started)})

    async def receivers(request: Request) -> Response:
        return JSONResponse([{"name": r.name} for r in notifier().config.receivers])

    return [
        Route("/api/v2/alerts", alerts_endpoint, methods=["GET", "POST"]),
        Route("/api/v2/alerts/groups", get_groups, methods=["GET"]),
        Route("/api/v2/silences", silences_endpoint, methods=["GET", "POST"]),
        Route("/api/v2/silence/{silence_id}", get_silence, methods=["GET"]),
        Route("/api/v2/silence/{silence_id}", delete_silence, methods=["DELETE"]),
        Route("/api/v2/status", status, methods=["GET"]),
        Route("/api/v2/receivers", receivers, methods=["GET"]),
    ]
