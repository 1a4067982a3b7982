"""The Prometheus-compatible HTTP query API (what Grafana's Prometheus data
source calls): query, query_range, labels, label values, series, metadata,
buildinfo, query_exemplars (status endpoints: collector/api/status.py). GET and form POST alike."""
from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from collector.model import KIND_COUNTER, KIND_GAUGE
from collector.query.errors import BadData, QueryError
from collector.query.gate import QueryGate
from collector.query.selectors import FLOAT, HIST, SeriesIndex, parse_match_params

_DUR = re.compile(r"(\d+(?:\.\d+)?)(ms|y|w|d|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(s: str, what: str) -> float:
    """Prometheus durations ("1h30m", "15s") or float seconds."""
    try:
        v = float(s)
        if math.isfinite(v):
            return v
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DUR.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        raise BadData(f"invalid parameter \"{what}\": cannot parse \"{s}\" to a valid duration")
    return total


def parse_time(s: str, what: str) -> float:
    try:
        return float(s)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadData(f"invalid parameter \"{what}\": cannot parse \"{s}\" to a valid timestamp") from None


def _ok(data, status: int = 200, **extra) -> JSONResponse:
    """``extra``: the query's ``warnings`` / ``infos`` (top-level fields, as Prometheus)."""
    return JSONResponse({"status": "success", "data": data, **extra}, status_code=status)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _chunked(obj) -> str:
    """JSON of ``obj`` encoded piece by piece: one ``json.dumps`` call holds the
    interpreter lock for its whole run (tens of ms for a day-long range result),
    while between pieces the event loop serving ingest can take it."""
    if isinstance(obj, dict):
        return "{" + ",".join(f"{_dumps(k)}:{_chunked(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list) and len(obj) > 1 and isinstance(obj[0], (dict, list)):
        return "[" + ",".join(_dumps(x) for x in obj) + "]"
    return _dumps(obj)


def _ok_bytes(data, **extra) -> bytes:
    """The success body, rendered where it is computed (a query thread), not on the event loop.
    ``extra``: the query's ``warnings`` / ``infos`` (top-level fields, as Prometheus)."""
    return _chunked({"status": "success", "data": data, **extra}).encode()


def _result_bytes(res) -> bytes:
    """The query answer's body, rendered piece by piece (``Result.json_pieces``)."""
    extra = res.annotations()
    tail = "".join(f",{_dumps(k)}:{_chunked(v)}" for k, v in extra.items())
    return ('{"status":"success","data":' + "".join(res.json_pieces()) + tail + "}").encode()


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _err(e: QueryError, metrics=None) -> JSONResponse:
    if metrics is not None:
        metrics.query_errors.labels(type=e.error_type).inc()
    return JSONResponse({"status": "error", "errorType": e.error_type, "error": str(e)}, status_code=e.status)


class _Params:
    """URL and form parameters; form values win, as in Prometheus."""

    def __init__(self, query, form: list[tuple[str, str]]):
        self.q = query
        self.f: dict[str, list[str]] = {}
        for k, v in form:
            self.f.setdefault(k, []).append(v)

    def get(self, name: str, default=None):
        if name in self.f:
            return self.f[name][0]
        return self.q.get(name, default)

    def getlist(self, name: str) -> list[str]:
        return list(self.q.getlist(name)) + self.f.get(name, [])


async def _params(request: Request) -> _Params:
    form: list = []
    if request.method == "POST":
        ctype = request.headers.get("content-type", "")
        if ctype and not ctype.startswith("application/x-www-form-urlencoded"):
            raise BadData(f"unsupported content type {ctype!r}; send application/x-www-form-urlencoded")
        # Parsed here: Starlette's request.form() needs python-multipart, for no gain on url-encoded forms.
        form = parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return _Params(request.query_params, form)


def _metric_type(kind: str, access: str) -> str:
    if access == HIST:
        return "histogram"
    if access != FLOAT:
        return "counter"
    return {KIND_COUNTER: "counter", KIND_GAUGE: "gauge"}.get(kind, "unknown")


def routes(ctx) -> list[Route]:
    metrics = getattr(ctx, "metrics", None)
    engine = ctx.engine
    index: SeriesIndex = getattr(engine, "index", None) or SeriesIndex(ctx.source.catalog)
    clock = getattr(ctx, "clock", None)
    # Every query, and every lookup that matches labels (regexes), runs in a query
    # thread under the gate: never on the event loop that serves ingest and health.
    gate: QueryGate = getattr(ctx, "query_gate", None) or QueryGate(timeout_s=getattr(engine, "timeout_s", 30))

    def now() -> float:
        if clock is None:
            return time.time()
        t = clock()
        return t / 1e9 if t > 1e12 else t  # the service clock may be in ns

    def observe(endpoint: str, t0: float) -> None:
        if metrics is not None:
            metrics.query_duration.labels(endpoint=endpoint).observe(time.perf_counter() - t0)

    def required(p: _Params, name: str, what: str | None = None) -> str:
        value = p.get(name)
        if not value:
            raise BadData(f"invalid parameter \"{name}\": missing {what or name}")
        return value

    def timeout_param(p: _Params):
        """The API's ``timeout`` parameter: shortens ``query.timeout``, never extends it (as in Prometheus)."""
        t = p.get("timeout")
        return parse_duration(t, "timeout") if t else None

    def lookback(p: _Params):
        lb = p.get("lookback_delta")
        return parse_duration(lb, "lookback_delta") if lb else None

    async def query(request: Request):
        t0 = time.perf_counter()
        try:
            p = await _params(request)
            expr = required(p, "query")
            t = parse_time(p.get("time"), "time") if p.get("time") else now()
            lb, timeout = lookback(p), timeout_param(p)
            return _json(await gate.run(lambda: _result_bytes(engine.instant(expr, t, lb)), timeout))
        except QueryError as e:
            return _err(e, metrics)
        finally:
            observe("query", t0)

    async def query_range(request: Request):
        t0 = time.perf_counter()
        try:
            p = await _params(request)
            expr = required(p, "query")
            start, end = parse_time(required(p, "start"), "start"), parse_time(required(p, "end"), "end")
            step = parse_duration(required(p, "step"), "step")
            lb, timeout = lookback(p), timeout_param(p)
            return _json(await gate.run(lambda: _result_bytes(engine.range(expr, start, end, step, lb)), timeout))
        except QueryError as e:
            return _err(e, metrics)
        finally:
            observe("query_range", t0)

    def _selected(p: _Params):
        before = getattr(getattr(ctx, "source", None), "before_query", None)
        if before is not None:   # receiver workers ship their new series (read your writes)
            before()
        matches = p.getlist("match[]")
        view = getattr(engine, "classic", None)   # histograms' X_bucket{le} series (collector/query/classic.py)
        if not matches:
            return index.all() + (view.summary(index) if view is not None else [])
        sets = parse_match_params(matches)
        return view.listed(index, sets) + index.match(sets) if view is not None else index.match(sets)

    def _limit(p: _Params, items: list) -> list:
        lim = p.get("limit")
        if lim:
            try:
                n = int(lim)
            except ValueError:
                raise BadData("invalid parameter \"limit\": not a number") from None
            if n > 0:
                return items[:n]
        return items

    async def labels(request: Request):
        try:
            p = await _params(request)
            return _json(await gate.run(lambda: _ok_bytes(
                _limit(p, sorted({k for e in _selected(p) for k, _ in e.labels})))))
        except QueryError as e:
            return _err(e, metrics)

    async def label_values(request: Request):
        try:
            p = await _params(request)
            name = request.path_params["name"]
            if name.startswith("U__"):  # Prometheus's escaping of UTF-8 label names
                name = re.sub(r"_([0-9a-fA-F]+)_", lambda m: chr(int(m.group(1), 16)), name[3:])
            return _json(await gate.run(lambda: _ok_bytes(
                _limit(p, sorted({v for e in _selected(p) for k, v in e.labels if k == name})))))
        except QueryError as e:
            return _err(e, metrics)

    async def series(request: Request):
        try:
            p = await _params(request)
            if not p.getlist("match[]"):
                raise BadData("no match[] parameter provided")
            return _json(await gate.run(lambda: _ok_bytes(_limit(p, [e.label_dict() for e in _selected(p)]))))
        except QueryError as e:
            return _err(e, metrics)

    async def metadata(request: Request):
        try:
            p = await _params(request)
            want = p.get("metric")
            out: dict[str, list] = {}
            for e in index.all():
                if want and e.name != want:
                    continue
                if e.name not in out:
                    out[e.name] = [{"type": _metric_type(e.kind, e.access), "help": e.help, "unit": e.unit}]
            names = _limit(p, sorted(out))
            return _ok({n: out[n] for n in names})
        except QueryError as e:
            return _err(e, metrics)

    async def buildinfo(request: Request):
        import collector
        return _ok({"version": getattr(collector, "__version__", "0.0.0"), "revision": "", "branch": "",
                    "buildUser": "", "buildDate": "", "goVersion": "", "application": "tocsin"})

    async def exemplars(request: Request):
        from collector.query.engine import parse_query
        from collector.query.exemplars import query_exemplars

        t0 = time.perf_counter()
        try:
            p = await _params(request)
            expr = required(p, "query")
            node = parse_query(expr)
            # Prometheus: without start/end, all the time there is
            start = parse_time(p.get("start"), "start") if p.get("start") else 0.0
            end = parse_time(p.get("end"), "end") if p.get("end") else now() + 3600
            if end < start:
                raise BadData("end timestamp must not be before start timestamp")
            if getattr(engine, "classic", None) is None:
                return _ok([])
            return _json(await gate.run(lambda: _ok_bytes(query_exemplars(engine, node, start, end))))
        except QueryError as e:
            return _err(e, metrics)
        finally:
            observe("query_exemplars", t0)

    both = ["GET", "POST"]
    return [
        Route("/api/v1/query", query, methods=both),
        Route("/api/v1/query_range", query_range, methods=both),
        Route("/api/v1/labels", labels, methods=both),
        Route("/api/v1/label/{name}/values", label_values, methods=["GET"]),
        Route("/api/v1/series", series, methods=both),
        Route("/api/v1/metadata", metadata, methods=["GET"]),
        Route("/api/v1/status/buildinfo", buildinfo, methods=["GET"]),
        Route("/api/v1/query_exemplars", exemplars, methods=both),
    ]
