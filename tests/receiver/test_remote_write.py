"""Prometheus remote write into the real server (POST /api/v1/write on the API
port): 1.0 and 2.0 messages, float samples and native histograms, queried back
through /api/v1/query; bad input, auth and tenancy; and a request acknowledged
just before a SIGKILL is counted exactly once after the restart (WAL replay)."""
from __future__ import annotations

import math
import signal
import time

import cramjam
import httpx
import numpy as np
import pytest

from collector.receiver.prompb import WriteRequest, WriteRequestV2
from serverproc import ServerProcess

V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"
HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


def snappy(msg) -> bytes:
    return bytes(cramjam.snappy.compress_raw(msg.SerializeToString()))


def now_ms() -> int:
    return int(time.time() * 1000)


def query(c: httpx.Client, expr: str, **kw) -> list:
    r = c.get("/api/v1/query", params={"query": expr, **kw})
    assert r.status_code == 200, r.text
    return r.json()["data"]["result"]


def add_native(ts, t_ms: int, values: list[float], schema: int = 3, start_count: int = 0):
    """A native histogram (cumulative) of ``values``, bucketed as Prometheus does."""
    base = 2 ** (2 ** -schema)
    idx = [math.ceil(math.log(v, base) - 1e-9) for v in values]
    counts: dict[int, int] = {}
    for i in idx:
        counts[i] = counts.get(i, 0) + 1
    h = ts.histograms.add(count_int=len(values) + start_count, sum=sum(values), schema=schema, timestamp=t_ms,
                          zero_threshold=1e-128)
    keys = sorted(counts)
    # one span per run of consecutive buckets, deltas between absolute counts
    prev_end, prev_count = None, 0
    for k in keys:
        if prev_end is None or k != prev_end:
            h.positive_spans.add(offset=k if prev_end is None else k - prev_end, length=1)
        else:
            h.positive_spans[-1].length += 1
        h.positive_deltas.append(counts[k] - prev_count)
        prev_count, prev_end = counts[k], k + 1
    return h


def test_v1_samples_and_metadata_are_queryable(server_factory):
    srv = server_factory({"rules": {"files": []}})
    t = now_ms()
    req = WriteRequest()
    for job, v in (("api", 5.0), ("db", 7.0)):
        ts = req.timeseries.add()
        for k, val in (("__name__", "http_requests_total"), ("job", job), ("instance", "h:9100")):
            ts.labels.add(name=k, value=val)
        ts.samples.add(value=v - 1, timestamp=t - 15000)
        ts.samples.add(value=v, timestamp=t)
    g = req.timeseries.add()
    g.labels.add(name="__name__", value="node_temperature")
    g.samples.add(value=41.5, timestamp=t)
    md = req.metadata.add(type=1, metric_family_name="http_requests_total", help="Requests.", unit="")
    assert md
    with srv.client() as c:
        r = c.post("/api/v1/write", content=snappy(req), headers=HEADERS)
        assert r.status_code == 204, r.text
        got = {s["metric"]["job"]: float(s["value"][1]) for s in query(c, "http_requests_total")}
        assert got == {"api": 5.0, "db": 7.0}
        assert float(query(c, "node_temperature")[0]["value"][1]) == 41.5
        inc = query(c, 'increase(http_requests_total{job="db"}[1m])')
        assert inc and float(inc[0]["value"][1]) > 0
        meta = c.get("/api/v1/metadata", params={"metric": "http_requests_total"}).json()["data"]
        assert meta["http_requests_total"][0]["type"] == "counter"


def test_v2_native_histogram_quantiles(server_factory):
    srv = server_factory({"rules": {"files": []}})
    rng = np.random.default_rng(7)
    first = list(rng.lognormal(np.log(0.1), 0.3, 500))
    more = list(rng.lognormal(np.log(0.4), 0.2, 500))
    t = now_ms()
    symbols = ["", "__name__", "rpc_duration_seconds", "service", "checkout", "Latency.", "seconds"]
    with srv.client() as c:
        for i, (vals, created) in enumerate(((first, t - 60_000), (first + more, t - 60_000))):
            req = WriteRequestV2(symbols=symbols)
            ts = req.timeseries.add(labels_refs=[1, 2, 3, 4], created_timestamp=created)
            ts.metadata.type, ts.metadata.help_ref, ts.metadata.unit_ref = 3, 5, 6
            add_native(ts, t - 20_000 + i * 10_000, vals)
            r = c.post("/api/v1/write", content=snappy(req), headers={**HEADERS, "Content-Type": V2_TYPE})
            assert r.status_code == 204, r.text
            assert r.headers["X-Prometheus-Remote-Write-Histograms-Written"] == "1"
        count = query(c, "histogram_count(increase(rpc_duration_seconds[5m]))")
        assert round(float(count[0]["value"][1])) == 1000   # created timestamp: the first point counts too
        p95 = float(query(c, "histogram_quantile(0.95, sum(rate(rpc_duration_seconds[5m])))")[0]["value"][1])
        exact = float(np.quantile(first + more, 0.95))
        assert abs(p95 - exact) / exact < 0.1   # schema 3 buckets are ~9 % wide: that is the sender's precision

        # Bucket boundaries: Prometheus's bucket i is (2^(i-1), 2^i] at schema 0; 0.3 is in (0.25, 0.5]
        req = WriteRequestV2(symbols=["", "__name__", "one_bucket_seconds"])
        ts = req.timeseries.add(labels_refs=[1, 2], created_timestamp=t - 60_000)
        add_native(ts, t - 5_000, [0.3] * 100, schema=0)
        assert c.post("/api/v1/write", content=snappy(req), headers={**HEADERS, "Content-Type": V2_TYPE}
                      ).status_code == 204
        for q in (0.01, 0.5, 0.99):
            v = float(query(c, f"histogram_quantile({q}, rate(one_bucket_seconds[5m]))")[0]["value"][1])
            assert 0.25 < v <= 0.5, (q, v)


def test_bad_input_keeps_the_good_part_and_answers_like_prometheus(server_factory):
    srv = server_factory({"rules": {"files": []}})
    t = now_ms()
    req = WriteRequest()
    ok = req.timeseries.add()
    ok.labels.add(name="__name__", value="kept_metric")
    ok.samples.add(value=1, timestamp=t)
    old = req.timeseries.add()
    old.labels.add(name="__name__", value="old_metric")
    old.samples.add(value=1, timestamp=t - 3_600_000)
    noname = req.timeseries.add()
    noname.labels.add(name="job", value="x")
    noname.samples.add(value=1, timestamp=t)
    with srv.client() as c:
        r = c.post("/api/v1/write", content=snappy(req), headers=HEADERS)
        assert r.status_code == 400
        assert "2 samples and histograms rejected" in r.text and "too old" in r.text and "missing metric name" in r.text
        assert query(c, "kept_metric")
        assert c.post("/api/v1/write", content=b"\x05garbage", headers=HEADERS).status_code == 400
        assert c.post("/api/v1/write", content=snappy(req), headers={**HEADERS, "Content-Encoding": "gzip"}
                      ).status_code == 415
        assert c.post("/api/v1/write", content=snappy(req),
                      headers={**HEADERS, "Content-Type": "application/x-protobuf;proto=other.Thing"}
                      ).status_code == 415
        bomb = b"\xff\xff\xff\xff\x0f" + b"\x00" * 10   # declares 4 GiB uncompressed
        r = c.post("/api/v1/write", content=bomb, headers=HEADERS)
        assert r.status_code == 413
        assert query(c, "kept_metric")   # the server still serves


def test_ingest_tokens_and_tenant_label(server_factory):
    srv = server_factory({"rules": {"files": []},
                          "auth": {"ingest_tokens": [{"token_env": "T_A", "tenant": "team-a"}]}},
                         env={"T_A": "ingest-a-secret"})
    req = WriteRequest()
    ts = req.timeseries.add()
    ts.labels.add(name="__name__", value="tenant_metric")
    ts.samples.add(value=3, timestamp=now_ms())
    with srv.client() as c:
        assert c.post("/api/v1/write", content=snappy(req), headers=HEADERS).status_code == 401
        r = c.post("/api/v1/write", content=snappy(req),
                   headers={**HEADERS, "Authorization": "Bearer ingest-a-secret"})
        assert r.status_code == 204
        assert query(c, "tenant_metric")[0]["metric"]["tenant"] == "team-a"


def test_rate_limit_answers_429_with_retry_after(server_factory):
    srv = server_factory({"rules": {"files": []}, "limits": {"rate": {"data_points_per_second": 5}}})
    req = WriteRequest()
    ts = req.timeseries.add()
    ts.labels.add(name="__name__", value="burst")
    t = now_ms()
    for i in range(20):
        ts.samples.add(value=i, timestamp=t - 20 + i)
    with srv.client() as c:
        codes = [c.post("/api/v1/write", content=snappy(req), headers=HEADERS) for _ in range(3)]
        limited = [r for r in codes if r.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1


def test_acknowledged_write_survives_sigkill_exactly_once(tmp_path):
    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": "1h"}}   # nothing reaches DuckDB before the kill
    srv = ServerProcess(tmp_path, cfg).start()
    t = now_ms()
    rng = np.random.default_rng(1)
    vals = list(rng.lognormal(np.log(0.2), 0.3, 300))
    symbols = ["", "__name__", "job_duration_seconds"]
    with srv.client() as c:
        for i, n in enumerate((100, 300)):
            req = WriteRequestV2(symbols=symbols)
            ts = req.timeseries.add(labels_refs=[1, 2], created_timestamp=t - 120_000)
            add_native(ts, t - 30_000 + i * 10_000, vals[:n])
            g = WriteRequestV2(symbols=["", "__name__", "gauge_before_kill"])
            g.timeseries.add(labels_refs=[1, 2]).samples.add(value=42, timestamp=t - 30_000 + i * 10_000)
            for m in (req, g):
                r = c.post("/api/v1/write", content=snappy(m), headers={**HEADERS, "Content-Type": V2_TYPE})
                assert r.status_code == 204
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv2 = ServerProcess(tmp_path, cfg).start()
    try:
        with srv2.client() as c:
            count = query(c, "histogram_count(increase(job_duration_seconds[5m]))")
            assert round(float(count[0]["value"][1])) == 300
            assert float(query(c, "gauge_before_kill")[0]["value"][1]) == 42
        assert "write-ahead log replay: done, 4 records" in srv2.output()
    finally:
        srv2.stop()
    srv3 = ServerProcess(tmp_path, cfg).start()   # a clean stop flushed: nothing is replayed twice
    try:
        with srv3.client() as c:
            count = query(c, "histogram_count(increase(job_duration_seconds[5m]))")
            assert round(float(count[0]["value"][1])) == 300
    finally:
        srv3.stop()


@pytest.mark.timeout(180)
def test_prometheus_remote_writes_its_own_metrics(server_factory, prometheus_factory):
    """Debian's Prometheus 2.42 scrapes itself and remote-writes to Tocsin with
    only `remote_write: [{url: http://tocsin:9099/api/v1/write}]`."""
    srv = server_factory({"rules": {"files": []},
                          "auth": {"ingest_tokens": [{"token_env": "RW_TOKEN", "tenant": "prom"}]}},
                         env={"RW_TOKEN": "rw-secret"})
    token = srv.workdir / "rw-token"
    token.write_text("rw-secret\n")
    from promproc import free_port
    port = free_port()   # Prometheus scrapes itself, so its port is chosen up front
    p = prometheus_factory({
        "global": {"scrape_interval": "1s", "external_labels": {"replica": "r1"}},
        "scrape_configs": [{"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
        "remote_write": [{"url": f"{srv.api_url}/api/v1/write", "authorization": {"credentials_file": str(token)},
                          "queue_config": {"batch_send_deadline": "1s"}}],
    }, port=port)
    try:
        with srv.client() as c:
            deadline = time.time() + 90
            got = []
            while time.time() < deadline:
                got = query(c, 'up{job="prometheus"}')
                if got and query(c, "rate(prometheus_http_requests_total[1m])"):
                    break
                time.sleep(0.5)
            assert got, "nothing arrived:\n" + srv.output()[-2000:] + p.output()[-3000:]
            assert got[0]["metric"]["replica"] == "r1" and got[0]["metric"]["tenant"] == "prom"
            assert float(got[0]["value"][1]) == 1.0
            build = query(c, "prometheus_build_info")
            assert build and build[0]["metric"]["version"].startswith("2.42")
            # classic histograms arrive as their float series (2.42 exposes no native histograms of its own)
            assert query(c, 'prometheus_http_request_duration_seconds_bucket{le="+Inf"}')
    finally:
        p.stop()
    assert "non-recoverable error" not in p.output(), p.output()[-3000:]
