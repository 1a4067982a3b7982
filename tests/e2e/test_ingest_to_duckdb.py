"""Spans from the real OpenTelemetry SDK exporters, through `tocsin serve`, into the
store (the DuckDB file, or PostgreSQL): counts exact, quantiles within 1 % of the
exact values, read through the `latency` view."""
import numpy as np
import pytest

from backends import Analyst, both_backends
from spans import exporter, send_spans


@both_backends
@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_spans_become_exact_histograms_in_the_store(server_factory, tmp_path, transport, backend, request):
    srv = server_factory({"rules": {"files": []}})
    endpoint = f"http://{srv.grpc}" if transport == "grpc" else srv.http_url
    rng = np.random.default_rng(42)
    durations = rng.lognormal(np.log(0.12), 0.7, 3000)
    send_spans(exporter(transport, endpoint), "checkout", durations)
    send_spans(exporter(transport, endpoint), "search", [0.01] * 50, route="/search")
    assert srv.stop() == 0, srv.output()

    db = Analyst(backend, request, tmp_path)
    svc, route, kind = db.label("service_name"), db.label("http_route"), db.label("span_kind")
    rows = db.rows(f"""SELECT {svc} AS svc, {route} AS route, {kind} AS kind, sum(count)::BIGINT AS n
                       FROM latency WHERE metric = 'traces_span_metrics_duration_seconds'
                       GROUP BY 1, 2, 3 ORDER BY svc""")
    assert rows == [("checkout", "/checkout", "SPAN_KIND_SERVER", 3000), ("search", "/search", "SPAN_KIND_SERVER", 50)]
    # All spans ended at one instant, so they share one slot: the view's quantiles are the slot's.
    p = db.rows(f"SELECT p50, p90, p95, p99, sum FROM latency WHERE {svc} = 'checkout'")
    assert len(p) == 1
    exact = np.percentile(durations, [50, 90, 95, 99], method="inverted_cdf")
    assert np.allclose(p[0][:4], exact, rtol=0.01), (p, exact)
    assert p[0][4] == pytest.approx(durations.sum(), rel=1e-6)


@both_backends
def test_query_sees_data_before_any_flush(server_factory):
    """Read your writes: the slot is still in memory when the query runs."""
    srv = server_factory({"rules": {"files": []}, "aggregation": {"flush_interval": "1h"}})
    send_spans(exporter("http", srv.http_url), "checkout", [0.2] * 10 + [0.9] * 10)
    with srv.client() as c:
        r = c.get("/api/v1/query", params={"query": "sum(traces_span_metrics_calls_total)"}).json()
        assert r["status"] == "success", r
        assert float(r["data"]["result"][0]["value"][1]) == 20
        r = c.get("/api/v1/query", params={
            "query": 'histogram_quantile(0.95, sum by (service_name) (rate(traces_span_metrics_duration_seconds[1m])))'
        }).json()
        value = float(r["data"]["result"][0]["value"][1])
        assert value == pytest.approx(0.9, rel=0.01)


@both_backends
def test_sigterm_flushes_and_exits_zero(server_factory, tmp_path, backend, request):
    srv = server_factory({"rules": {"files": []}, "aggregation": {"flush_interval": "1h"},
                          "storage": {"wal": "off"}})
    send_spans(exporter("grpc", f"http://{srv.grpc}"), "checkout", [0.05] * 7)
    assert srv.stop() == 0
    assert Analyst(backend, request, tmp_path).rows("SELECT sum(count)::BIGINT FROM latency") == [(7,)]
