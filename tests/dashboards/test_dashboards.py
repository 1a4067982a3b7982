"""The Grafana dashboards: importable JSON, generated from dashboards/build.py, and
every panel query answered by a real ``tocsin serve`` seeded through the OTLP SDK."""
from __future__ import annotations

import importlib.util
import json
import re
import time
from pathlib import Path

import httpx
import promql_parser
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from serverproc import ServerProcess

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"
FILES = ["service-latency.json", "alerts.json", "tocsin-itself.json"]
DS_REFS = {"${DS_PROMETHEUS}", "${datasource}", "$datasource"}

SERVICES = ("checkout", "catalog")
ROUTES = ("/pay", "/cart", "/items/{id}")
SUBSTITUTIONS = {"${DS_PROMETHEUS}": "", "$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                 "$service": ".*", "$route": ".*", "$threshold": "0.5", "$alertname": ".*", "$instance": ".*"}

# Panels allowed to answer "success" with no series in the live check, and why.
EMPTY_OK_FILES = {"tocsin-itself.json": "tocsin_* series are Tocsin's own /metrics; Tocsin does not ingest them "
                                        "(a Prometheus scraping /metrics does)"}
EMPTY_OK_PANELS = {("alerts.json", "Alerts by name and state"): "ALERTS exists once a rule is pending or firing; "
                                                                 "the seeded server loads no rules",
                   ("alerts.json", "Firing alerts"): "no rule loaded, so nothing fires",
                   ("alerts.json", "Active for"): "ALERTS_FOR_STATE exists only for active alerts; no rule loaded"}
EMPTY_OK_VARIABLES = {("alerts.json", "alertname"): "no rule loaded, so ALERTS has no alertname values",
                      ("tocsin-itself.json", "instance"): "tocsin_* self-metrics are not ingested by Tocsin"}


def load(name: str) -> dict:
    return json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))


def panels(board: dict) -> list[dict]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside collapsed rows
    return out


def targets() -> list[tuple[str, str, dict]]:
    return [(name, p["title"], t) for name in FILES for p in panels(load(name)) for t in p.get("targets", [])]


def substitute(expr: str) -> str:
    for var in sorted(SUBSTITUTIONS, key=len, reverse=True):  # $__rate_interval before $__range etc.
        expr = expr.replace(var, SUBSTITUTIONS[var])
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


# ---------------------------------------------------------------- static checks
@pytest.mark.parametrize("name", FILES)
def test_dashboard_is_importable(name):
    board = load(name)
    assert board["uid"] and board["title"] and 36 <= board["schemaVersion"] <= 41
    assert board["id"] is None
    assert [i["pluginId"] for i in board["__inputs"] if i["type"] == "datasource"] == ["prometheus"]
    assert board["__inputs"][0]["name"] == "DS_PROMETHEUS"
    assert {"grafana", "prometheus"} <= {r["id"] for r in board["__requires"]}
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    for p in panels(board):
        assert p["datasource"]["type"] == "prometheus" and p["datasource"]["uid"] in DS_REFS, p["title"]
        for t in p.get("targets", []):
            assert t.get("expr"), f"{name}: panel {p['title']!r} has a target without expr"
            assert t["refId"], p["title"]
            assert t.get("datasource", p["datasource"])["uid"] in DS_REFS
    text = json.dumps(board)
    # No data source uid is baked in: only the import placeholder and the variable.
    uids = set(re.findall(r'"uid": "([^"]*)"', text)) - {board["uid"]}
    assert uids <= DS_REFS, uids


@pytest.mark.parametrize("name,title,target", targets(), ids=lambda v: v if isinstance(v, str) else v["refId"])
def test_panel_query_is_promql(name, title, target):
    promql_parser.parse(substitute(target["expr"]))  # raises on a syntax error


def test_service_latency_variables():
    variables = {v["name"]: v for v in load("service-latency.json")["templating"]["list"]}
    svc, route, threshold = variables["service"], variables["route"], variables["threshold"]
    assert svc["query"]["query"] == "label_values(traces_span_metrics_duration_seconds_count, service_name)"
    assert svc["multi"] and svc["includeAll"]
    assert route["query"]["query"] == ('label_values(traces_span_metrics_duration_seconds_count'
                                       '{service_name=~"$service"}, http_route)')
    assert threshold["type"] == "custom" and threshold["query"] == "0.1,0.25,0.5,1"


def test_generator_output_equals_committed_files():
    spec = importlib.util.spec_from_file_location("dashboards_build", DASHBOARDS / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rendered = build.render()
    assert sorted(rendered) == sorted(FILES)
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text(encoding="utf-8") == text, \
            f"dashboards/{name} is out of date: run `python dashboards/build.py`"


# ---------------------------------------------------------------- live check
def seed(server: ServerProcess) -> None:
    """SERVER spans for 2 services x 3 routes, ending within the last minute; some fail with HTTP 500."""
    now = time.time_ns()
    for service in SERVICES:
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.http_url}/v1/traces")))
        tracer = provider.get_tracer("tests.dashboards")
        for r, route in enumerate(ROUTES):
            for k in range(30):
                end = now - (50 - k * 1.6) * 1e9  # spread over [now-50s, now-3.6s]
                duration = 0.005 * (1 + k) * (1 + r)  # 5 ms .. 450 ms
                failed = service == "checkout" and k % 5 == 0
                span = tracer.start_span(f"GET {route}", kind=SpanKind.SERVER, start_time=int(end - duration * 1e9),
                                         attributes={"http.request.method": "GET", "http.route": route,
                                                     "http.response.status_code": 500 if failed else 200})
                if failed:
                    span.set_status(Status(StatusCode.ERROR))
                span.end(end_time=int(end))
        assert provider.force_flush(10_000)
        provider.shutdown()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = ServerProcess(tmp_path_factory.mktemp("dashboards"), {})
    try:
        server.start()
    except RuntimeError as e:  # the only reason to skip: no server to ask
        pytest.skip(f"tocsin serve failed to start, live dashboard check not run: {str(e)[-600:]}")
    try:
        seed(server)
        with server.client() as client:
            yield client
    finally:
        server.stop()


def run(client: httpx.Client, target: dict, expr: str) -> list:
    now = time.time()
    if target.get("instant"):
        r = client.get("/api/v1/query", params={"query": expr, "time": now})
    else:
        r = client.get("/api/v1/query_range", params={"query": expr, "start": now - 600, "end": now, "step": 15})
    assert r.status_code == 200, f"{expr}: HTTP {r.status_code} {r.text[:500]}"
    body = r.json()
    assert body["status"] == "success", f"{expr}: {body}"
    return body["data"]["result"]


@pytest.mark.parametrize("name,title,target", targets(), ids=lambda v: v if isinstance(v, str) else v["refId"])
def test_panel_query_answers(live, name, title, target):
    result = run(live, target, substitute(target["expr"]))
    if name in EMPTY_OK_FILES or (name, title) in EMPTY_OK_PANELS:
        return
    assert result, f"{name}: panel {title!r} got no series for {target['expr']!r}"


def test_exemplar_panels_get_exemplars(live):
    """Grafana's exemplar toggle: the panel's expression to /api/v1/query_exemplars, answered
    with the seeded spans' own trace ids (real ones, from the OpenTelemetry SDK)."""
    with_exemplars = [(title, t) for name, title, t in targets() if t.get("exemplar")]
    assert {title for title, _ in with_exemplars} == {"Latency p50 / p95 / p99 per service", "p95 per route"}
    for title, t in with_exemplars:
        r = live.get("/api/v1/query_exemplars", params={"query": substitute(t["expr"]),
                                                         "start": time.time() - 600, "end": time.time()})
        assert r.status_code == 200 and r.json()["status"] == "success", r.text[:500]
        data = r.json()["data"]
        assert {s["seriesLabels"]["service_name"] for s in data} == set(SERVICES), title
        for s in data:
            for e in s["exemplars"]:
                assert re.fullmatch(r"[0-9a-f]{32}", e["labels"]["trace_id"]) and float(e["value"]) > 0


def test_service_filter_narrows_series(live):
    p95 = next(t for n, title, t in targets() if title == "p95 per route")
    expr = substitute(p95["expr"].replace("$service", "checkout"))
    result = run(live, p95, expr)
    assert {s["metric"]["service_name"] for s in result} == {"checkout"}
    assert {s["metric"]["http_route"] for s in result} == set(ROUTES)


def variable_queries() -> list[tuple[str, str, str]]:
    return [(name, v["name"], v["query"]["query"]) for name in FILES
            for v in load(name)["templating"]["list"] if v["type"] == "query"]


@pytest.mark.parametrize("name,var,query", variable_queries())
def test_variable_values(live, name, var, query):
    """What Grafana asks for `label_values(selector, label)`: /api/v1/label/<label>/values?match[]=selector."""
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", query)
    assert m, query
    selector, label = substitute(m.group(1)), m.group(2)
    r = live.get(f"/api/v1/label/{label}/values", params={"match[]": selector,
                                                          "start": time.time() - 3600, "end": time.time()})
    assert r.status_code == 200 and r.json()["status"] == "success", r.text[:500]
    values = set(r.json()["data"])
    if (name, var) in EMPTY_OK_VARIABLES:
        return
    expected = {"service": set(SERVICES), "route": set(ROUTES)}[var]
    assert expected <= values, (query, values)
