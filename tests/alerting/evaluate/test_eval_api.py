"""GET /api/v1/rules, /api/v1/alerts and POST /-/reload over a real server on port 0."""
from __future__ import annotations

import socket
import threading
import time
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from evalfakes import DictStore, LatencyScript, Notifications, Recorder
from starlette.applications import Starlette

from alerting.evaluate.api import format_value, rfc3339, routes
from alerting.evaluate.manager import RuleManager

RULES = """\
groups:
- name: latency
  interval: 15s
  rules:
  - record: p95
    expr: histogram_quantile(0.95, sum by (service_name) (rate(traces_span_metrics_duration_seconds[1m])))
  - alert: CheckoutSlow
    latency: {match: {service_name: checkout}, above: 500ms, window: 1m}
    for: 1m
    annotations: {summary: "{{ $value | humanizeDuration }}"}
"""


@pytest.fixture
def served(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(RULES)
    query = LatencyScript({"service_name": "checkout"}, {1000.0: (0.9, 100), 1015.0: (0.9, 100)})
    m = RuleManager(DictStore(), query, Recorder(), Notifications(), None, clock=lambda: 0.0)
    assert m.load([str(path)]) == []
    m.evaluate_group("latency", 1000.0)
    m.evaluate_group("latency", 1015.0)
    reloads = []

    def reload():
        reloads.append(1)
        return m.reload()

    ctx = SimpleNamespace(evaluator=m, reload=reload)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=routes(ctx)), log_level="warning"))
    th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    th.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", m, path, reloads
    server.should_exit = True
    th.join(5)


def test_rules_shape(served):
    url, *_ = served
    body = httpx.get(url + "/api/v1/rules").json()
    assert body["status"] == "success"
    (g,) = body["data"]["groups"]
    assert (g["name"], g["interval"], g["limit"], g["lastEvaluation"]) == ("latency", 15.0, 0, "1970-01-01T00:16:55Z")
    rec, alert = g["rules"]
    assert rec["type"] == "recording" and rec["health"] == "ok" and set(rec) == {
        "name", "query", "labels", "health", "lastError", "evaluationTime", "lastEvaluation", "type"}
    assert alert["type"] == "alerting" and alert["state"] == "pending" and alert["duration"] == 60.0
    assert set(alert) == {"state", "name", "query", "duration", "keepFiringFor", "labels", "annotations", "alerts",
                          "health", "lastError", "evaluationTime", "lastEvaluation", "type"}
    assert alert["query"].endswith("> 0.5")
    assert alert["alerts"] == [{"labels": {"alertname": "CheckoutSlow", "service_name": "checkout",
                                           "severity": "critical"},
                                "annotations": {"summary": "900ms"}, "state": "pending",
                                "activeAt": "1970-01-01T00:16:40Z", "value": "9e-01"}]
    only = httpx.get(url + "/api/v1/rules", params={"type": "record"}).json()["data"]["groups"][0]["rules"]
    assert [r["name"] for r in only] == ["p95"]
    assert httpx.get(url + "/api/v1/rules", params={"type": "x"}).status_code == 400


def test_alerts_shape(served):
    url, *_ = served
    body = httpx.get(url + "/api/v1/alerts").json()
    assert body == {"status": "success", "data": {"alerts": [{
        "labels": {"alertname": "CheckoutSlow", "service_name": "checkout", "severity": "critical"},
        "annotations": {"summary": "900ms"}, "state": "pending", "activeAt": "1970-01-01T00:16:40Z",
        "value": "9e-01"}]}}


def test_reload_calls_ctx_reload_and_reports_errors(served):
    url, m, path, reloads = served
    assert httpx.post(url + "/-/reload").status_code == 200
    path.write_text("groups: [{name: x, rules: [{alert: A}]}]\n")
    r = httpx.post(url + "/-/reload")
    assert r.status_code == 500 and "needs exactly one of" in r.text
    assert len(reloads) == 2 and [g.name for g in m.groups()] == ["latency"]


def test_formats():
    assert format_value(0.5) == "5e-01" and format_value(123.0) == "1.23e+02"
    assert rfc3339(1.5) == "1970-01-01T00:00:01.5Z" and rfc3339(0) == "0001-01-01T00:00:00Z"


def test_a_rule_whose_expression_gives_histograms_errs_instead_of_recording_nothing():
    """Recording `sum(rate(h[5m]))` used to record nothing, silently: the rule now
    reports an error that says what to write instead."""
    import numpy as np
    import pytest

    from collector.aggregate.aggregator import Aggregator
    from collector.model import NS, SeriesCatalog, make_labels
    from collector.query.engine import Engine
    from collector.query.errors import BadData
    from collector.query.source import LiveSource
    from collector.store.duckdb_store import DuckDBStore

    now = 1_800_000_000 * NS
    agg = Aggregator(SeriesCatalog(), clock=lambda: now)
    agg.record_durations("traces_span_metrics_duration_seconds", [make_labels({"service_name": "a"})],
                         np.zeros(5, np.int64), np.full(5, now - 20 * NS), np.full(5, 0.1))
    engine = Engine(LiveSource(DuckDBStore(":memory:"), agg), clock=lambda: now / NS)
    with pytest.raises(BadData, match="gives histogram samples; rules take numbers"):
        engine.instant_vector("sum(rate(traces_span_metrics_duration_seconds[5m]))", now / NS)
    assert engine.instant_vector("histogram_count(sum(rate(traces_span_metrics_duration_seconds[5m])))",
                                 now / NS)[0][1] > 0
