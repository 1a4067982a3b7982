"""Tocsin's own traces: sent to another collector (here a second Tocsin), never to itself."""
import socket
import time

import httpx
import pytest

from serverproc import ServerProcess
from spans import exporter, send_spans


def test_own_traces_reach_another_collector(server_factory, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    watcher = server_factory({"rules": {"files": []}}, workdir=tmp_path / "b")
    traced = server_factory({"rules": {"files": []}, "aggregation": {"flush_interval": "200ms"},
                             "self_telemetry": {"traces_endpoint": watcher.http_url}}, workdir=tmp_path / "a")
    send_spans(exporter("http", traced.http_url), "checkout", [0.1] * 20)
    query = 'sum by (span_name) (traces_span_metrics_calls_total{service_name="tocsin"})'
    deadline, names = time.time() + 20, {}
    while time.time() < deadline:
        r = httpx.get(f"{watcher.api_url}/api/v1/query", params={"query": query}).json()
        names = {s["metric"]["span_name"]: float(s["value"][1]) for s in r["data"]["result"]}
        if "tocsin.otlp.export" in names:
            break
        time.sleep(0.5)
    # Tocsin's spans are INTERNAL by default except the export span, which is a SERVER span
    assert names.get("tocsin.otlp.export", 0) >= 1, names


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tracing_into_itself_is_refused(tmp_path):
    port = _free_port()
    srv = ServerProcess(tmp_path, {"rules": {"files": []}},
                        env={"TOCSIN_RECEIVERS__OTLP__HTTP__LISTEN": f"127.0.0.1:{port}",
                             "TOCSIN_SELF_TELEMETRY__TRACES_ENDPOINT": f"http://localhost:{port}"})
    with pytest.raises(RuntimeError) as e:
        srv.start(timeout=15)
    assert "is this Tocsin's own OTLP receiver" in str(e.value)
