"""GET /api/v1/rules and /api/v1/alerts in Prometheus's JSON shapes, and
POST /-/reload. ``ctx.evaluator`` is the RuleManager."""
from __future__ import annotations

import datetime as _dt
import math

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from alerting.evaluate.state import FIRING, PENDING
from alerting.rules.compile import AlertingRule

_ZERO_TIME = "0001-01-01T00:00:00Z"
_RANK = {"inactive": 0, PENDING: 1, FIRING: 2}


def rfc3339(t: float) -> str:
    if not t:
        return _ZERO_TIME
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    frac = f".{d.microsecond:06d}".rstrip("0").rstrip(".")
    return d.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


def format_value(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'e', -1, 64), as Prometheus prints alert values."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_scientific(v, trim="-", exp_digits=2)


def _alert_json(e) -> dict:
    out = {"labels": dict(e.labels), "annotations": dict(e.annotations), "state": e.state,
           "activeAt": rfc3339(e.active_at), "value": format_value(e.value)}
    if e.keep_firing_since:
        out["keepFiringSince"] = rfc3339(e.keep_firing_since)
    return out


def _ok(data) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _bad(msg: str) -> JSONResponse:
    return JSONResponse({"status": "error", "errorType": "bad_data", "error": msg}, status_code=400)


def rules_json(ev, type_: str = "", names=(), groups=(), files=(), exclude_alerts=False) -> dict:
    out = []
    for g in ev.groups():
        if groups and g.name not in groups or files and g.file not in files:
            continue
        rules = []
        for r in g.rules:
            alerting = isinstance(r, AlertingRule)
            if type_ == "alert" and not alerting or type_ == "record" and alerting or names and r.name not in names:
                continue
            h = ev.rule_health(g.name, r.key)
            common = {"name": r.name, "query": r.expr, "labels": dict(r.labels), "health": h.health,
                      "lastError": h.last_error, "evaluationTime": h.evaluation_time,
                      "lastEvaluation": rfc3339(h.last_evaluation)}
            if not alerting:
                rules.append({**common, "type": "recording"})
                continue
            active = [e for e in ev.rule_entries(g.name, r.key).values() if e.state in (PENDING, FIRING)]
            state = max((e.state for e in active), key=_RANK.get, default="inactive")
            rule = {"state": state, **common, "duration": r.for_, "keepFiringFor": r.keep_firing_for,
                    "annotations": dict(r.annotations), "type": "alerting"}
            if not exclude_alerts:
                rule["alerts"] = [_alert_json(e) for e in active]
            rules.append(rule)
        if (type_ or names) and not rules:
            continue
        gh = ev.group_health(g.name)
        out.append({"name": g.name, "file": g.file, "rules": rules, "interval": g.interval, "limit": g.limit,
                    "evaluationTime": gh.evaluation_time, "lastEvaluation": rfc3339(gh.last_evaluation)})
    return {"groups": out}


def alerts_json(ev) -> dict:
    return {"alerts": [_alert_json(e) for _, e in ev.active()]}


def routes(ctx) -> list[Route]:
    async def get_rules(request: Request):
        q = request.query_params
        type_ = q.get("type", "")
        if type_ not in ("", "alert", "record"):
            return _bad(f'unsupported type "{type_}": use alert or record')
        ex = q.get("exclude_alerts", "false").lower()
        if ex not in ("true", "false", "1", "0"):
            return _bad(f'exclude_alerts must be true or false, got "{ex}"')
        return _ok(rules_json(ctx.evaluator, type_, q.getlist("rule_name[]"), q.getlist("rule_group[]"),
                              q.getlist("file[]"), ex in ("true", "1")))

    async def get_alerts(request: Request):
        return _ok(alerts_json(ctx.evaluator))

    async def reload(request: Request):
        try:
            result = await run_in_threadpool(ctx.reload)
        except Exception as e:
            return PlainTextResponse(f"failed to reload config: {e}\n", status_code=500)
        if isinstance(result, (list, tuple)) and result:
            return PlainTextResponse("failed to reload config:\n" + "\n".join(map(str, result)) + "\n",
                                     status_code=500)
        return PlainTextResponse("")

    return [Route("/api/v1/rules", get_rules, methods=["GET"]),
            Route("/api/v1/alerts", get_alerts, methods=["GET"]),
            Route("/-/reload", reload, methods=["POST", "PUT"])]
