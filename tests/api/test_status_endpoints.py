"""The Prometheus status endpoints Grafana and tools call, on the real server;
and `tocsin query --start --end --step` (a range query) through the CLI."""
from __future__ import annotations

import subprocess
import sys
import time

import cramjam
from ruamel.yaml import YAML

from collector.receiver.prompb import WriteRequest


def _write(c, series: list[tuple[dict, float]]) -> None:
    req = WriteRequest()
    t = int(time.time() * 1000)
    for labels, v in series:
        ts = req.timeseries.add()
        for k, val in labels.items():
            ts.labels.add(name=k, value=val)
        ts.samples.add(value=v, timestamp=t - 30_000)
        ts.samples.add(value=v + 1, timestamp=t)
    r = c.post("/api/v1/write", content=bytes(cramjam.snappy.compress_raw(req.SerializeToString())),
               headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    assert r.status_code == 204, r.text


def test_status_endpoints(server_factory):
    srv = server_factory({"rules": {"files": []}, "query": {"timeout": "20s"}})
    with srv.client() as c:
        _write(c, [({"__name__": "reqs_total", "pod": f"p{i}", "job": "api"}, i) for i in range(5)] +
               [({"__name__": "temp", "job": "node"}, 1.0)])
        cfg = c.get("/api/v1/status/config").json()
        assert cfg["status"] == "success"
        parsed = YAML(typ="safe").load(cfg["data"]["yaml"])
        assert parsed["query"]["timeout"] == 20.0 and "notify" in parsed

        flags = c.get("/api/v1/status/flags").json()["data"]
        assert flags["query.timeout"] == "20s" and all(isinstance(v, str) for v in flags.values())

        info = c.get("/api/v1/status/runtimeinfo").json()["data"]
        assert info["reloadConfigSuccess"] is True and info["timeSeriesCount"] >= 6
        assert info["startTime"].endswith("Z") and info["CWD"]
        r = c.post("/-/reload")
        assert r.status_code == 200
        assert c.get("/api/v1/status/runtimeinfo").json()["data"]["lastConfigTime"] >= info["lastConfigTime"]

        tsdb = c.get("/api/v1/status/tsdb").json()["data"]
        by_metric = {e["name"]: e["value"] for e in tsdb["seriesCountByMetricName"]}
        assert by_metric["reqs_total"] == 5 and by_metric["temp"] == 1
        values = {e["name"]: e["value"] for e in tsdb["labelValueCountByLabelName"]}
        assert values["pod"] == 5 and values["job"] == 2
        pairs = {e["name"]: e["value"] for e in tsdb["seriesCountByLabelValuePair"]}
        assert pairs["job=api"] == 5
        assert tsdb["headStats"]["numSeries"] >= 6
        top1 = c.get("/api/v1/status/tsdb", params={"limit": "1"}).json()["data"]
        assert [e["name"] for e in top1["seriesCountByMetricName"]] == ["reqs_total"]
        assert c.get("/api/v1/status/tsdb", params={"limit": "x"}).status_code == 400

        f = c.get("/api/v1/format_query", params={"query": 'sum by(job)(rate(reqs_total{job="api"}[5m]))'}).json()
        assert f == {"status": "success", "data": 'sum by (job) (rate(reqs_total{job="api"}[5m]))'}
        f = c.post("/api/v1/format_query", data={"query": "foo +"})
        assert f.status_code == 400 and f.json()["errorType"] == "bad_data"

        assert c.get("/api/v1/targets").json() == {"status": "success",
                                                   "data": {"activeTargets": [], "droppedTargets": []}}


def test_query_cli_range(server_factory):
    srv = server_factory({"rules": {"files": []}})
    with srv.client() as c:
        _write(c, [({"__name__": "cli_metric", "job": "a"}, 10.0)])
    now = time.time()
    out = subprocess.run([sys.executable, "-m", "collector", "query", "cli_metric", "--url", srv.api_url,
                          "--start", str(now - 60), "--end", str(now), "--step", "15s"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith('cli_metric{job="a"}')]
    assert len(lines) >= 2 and any(" 11 @" in line for line in lines), out.stdout
    out = subprocess.run([sys.executable, "-m", "collector", "query", "cli_metric", "--url", srv.api_url,
                          "--start", "now-2m"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "@" in out.stdout, out.stderr
    out = subprocess.run([sys.executable, "-m", "collector", "query", "cli_metric", "--url", srv.api_url,
                          "--start", "now-2m", "--step", "soon"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "soon" in out.stderr
