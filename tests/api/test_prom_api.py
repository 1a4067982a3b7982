"""The Prometheus HTTP API under a real uvicorn server, called the way
Grafana's Prometheus data source calls it."""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import uvicorn
from starlette.applications import Starlette

from collector.api.prom import routes
from collector.query.engine import Engine
from collector.selfmetrics import SelfMetrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "query"))
from helpers import HistBuilder  # noqa: E402

M = "traces_span_metrics_duration_seconds"


@pytest.fixture(scope="module")
def api():
    b = HistBuilder()
    rng = np.random.default_rng(3)
    for svc in ("checkout", "cart"):
        for s in range(0, 3600, 10):
            b.add_hdr(M, {"service_name": svc, "span_kind": "SPAN_KIND_SERVER"}, s, rng.uniform(0.01, 0.3, 5))
    b.add_float("process_open_fds", {"job": "tocsin"}, "gauge", [(t, 10.0 + t / 60) for t in range(0, 3600, 15)])
    b.add_float("http.server.active_requests", {"job": "tocsin"}, "gauge", [(t, 1.0) for t in range(0, 3600, 15)])
    src = b.source()
    metrics = SelfMetrics()
    ctx = SimpleNamespace(engine=Engine(src), source=src, metrics=metrics)
    app = Starlette(routes=routes(ctx))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        yield client, metrics
    server.should_exit = True
    th.join(5)


def test_grafana_save_and_test(api):
    c, _ = api
    r = c.post("/api/v1/query", data={"query": "1+1", "time": "3000"})
    assert r.status_code == 200
    assert r.json() == {"status": "success", "data": {"resultType": "scalar", "result": [3000, "2"]}}
    b = c.get("/api/v1/status/buildinfo").json()
    assert b["status"] == "success" and b["data"]["version"]


def test_query_range_matrix_and_histograms(api):
    c, metrics = api
    q = f"histogram_quantile(0.95, sum by (service_name) (rate({M}[5m])))"
    r = c.post("/api/v1/query_range", data={"query": q, "start": "1970-01-01T00:10:00Z", "end": "3000", "step": "1m"})
    body = r.json()
    assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    assert {s["metric"]["service_name"] for s in body["data"]["result"]} == {"cart", "checkout"}
    series = body["data"]["result"][0]["values"]
    assert series[0][0] == 600 and len(series) == 41 and all(isinstance(v, str) for _, v in series)
    h = c.get("/api/v1/query_range", params={"query": f"sum(rate({M}[1m]))", "start": 600, "end": 700,
                                              "step": 50}).json()
    hist = h["data"]["result"][0]["histograms"][0][1]
    assert set(hist) == {"count", "sum", "buckets"} and len(hist["buckets"][0]) == 4
    assert metrics.registry.get_sample_value("tocsin_query_duration_seconds_count",
                                             {"endpoint": "query_range"}) >= 2


def test_instant_vector_and_histogram(api):
    c, _ = api
    r = c.get("/api/v1/query", params={"query": "process_open_fds", "time": "1200"}).json()
    assert r["data"]["result"][0]["value"][1] == "30"
    r = c.get("/api/v1/query", params={"query": f'{M}{{service_name="cart"}}', "time": "1200.5"}).json()
    assert "histogram" in r["data"]["result"][0]


def test_errors_have_prometheus_shape(api):
    c, _ = api
    r = c.get("/api/v1/query", params={"query": "sum(", "time": "10"})
    assert r.status_code == 400
    assert r.json()["status"] == "error" and r.json()["errorType"] == "bad_data"
    r = c.get("/api/v1/query_range", params={"query": "up", "start": "x", "end": "1", "step": "1"})
    assert r.status_code == 400 and "start" in r.json()["error"]
    r = c.get("/api/v1/query_range", params={"query": "up", "start": "0", "end": "100000", "step": "1"})
    assert r.status_code == 400
    r = c.get("/api/v1/query", params={"query": f"max(rate({M}[5m]))", "time": "1200"})  # histograms ignored
    assert r.status_code == 200 and r.json()["infos"] == ["PromQL info: ignored histogram in max aggregation"]
    assert "warnings" not in r.json()
    r = c.get("/api/v1/query", params={"query": "step()"})
    assert r.status_code == 400 and "not support" in r.json()["error"]


def test_labels_values_series_metadata(api):
    c, _ = api
    names = c.get("/api/v1/label/__name__/values").json()["data"]
    for n in (M, M + "_count", M + "_sum", "traces_span_metrics_calls_total", "process_open_fds",
              "http.server.active_requests"):
        assert n in names
    labels = c.get("/api/v1/labels", params={"match[]": f"{M}_count"}).json()["data"]
    assert labels == ["__name__", "service_name", "span_kind"]
    vals = c.post("/api/v1/labels", data={"match[]": "process_open_fds"}).json()["data"]
    assert vals == ["__name__", "job"]
    svc = c.get("/api/v1/label/service_name/values", params={"match[]": "traces_span_metrics_calls_total"}).json()
    assert svc["data"] == ["cart", "checkout"]
    ser = c.get("/api/v1/series", params={"match[]": ['{service_name="cart"}'], "start": "0", "end": "10"}).json()
    assert len(ser["data"]) == 4 and all(s["service_name"] == "cart" for s in ser["data"])
    assert c.get("/api/v1/series").status_code == 400
    md = c.get("/api/v1/metadata").json()["data"]
    assert md[M][0]["type"] == "histogram" and md["traces_span_metrics_calls_total"][0]["type"] == "counter"
    assert md["process_open_fds"][0]["type"] == "gauge"
    assert c.get("/api/v1/metadata", params={"metric": "process_open_fds"}).json()["data"].keys() == \
        {"process_open_fds"}
    assert c.get("/api/v1/query_exemplars", params={"query": "x"}).json() == {"status": "success", "data": []}
    # /api/v1/status/runtimeinfo moved to collector/api/status.py: tests/api/test_status_endpoints.py


def test_utf8_label_value_escape_and_lookback(api):
    c, _ = api
    r = c.get("/api/v1/query", params={"query": '{"http.server.active_requests"}', "time": "3700",
                                       "lookback_delta": "30s"}).json()
    assert r["data"]["result"] == []
    r = c.get("/api/v1/query", params={"query": '{"http.server.active_requests"}', "time": "3700"}).json()
    assert r["data"]["result"][0]["metric"]["__name__"] == "http.server.active_requests"
