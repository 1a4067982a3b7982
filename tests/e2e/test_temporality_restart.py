"""Cumulative OTLP histograms across restarts: the last point of each series is
kept with the data, so the first point after a restart (clean or crash) is
counted as the delta it is, not taken as a new baseline."""
import signal
import time

import duckdb
import httpx
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE, HistogramDataPoint

from serverproc import ServerProcess

START = time.time_ns() - 3600 * 10**9  # the app started an hour ago: its first point is a baseline


def _point(counts) -> bytes:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="pay")))
    m = rm.scope_metrics.add().metrics.add()
    m.name, m.unit = "rpc.duration", "s"
    m.histogram.aggregation_temporality = AGGREGATION_TEMPORALITY_CUMULATIVE
    m.histogram.data_points.append(HistogramDataPoint(
        start_time_unix_nano=START, time_unix_nano=time.time_ns(), count=sum(counts), sum=0.1 * sum(counts),
        explicit_bounds=[0.1, 1.0], bucket_counts=counts))
    return req.SerializeToString()


def _send(srv, counts):
    r = httpx.post(f"{srv.http_url}/v1/metrics", content=_point(counts),
                   headers={"Content-Type": "application/x-protobuf"})
    assert r.status_code == 200, r.text


def _stored(tmp_path) -> int:
    con = duckdb.connect(str(tmp_path / "tocsin.duckdb"), read_only=True)
    try:
        return con.sql("SELECT coalesce(sum(count), 0)::BIGINT FROM latency "
                       "WHERE metric = 'rpc_duration_seconds'").fetchall()[0][0]
    finally:
        con.close()


@pytest.mark.parametrize("how", ["sigterm", "sigkill_after_flush", "sigkill_before_flush"])
def test_first_point_after_restart_is_a_delta(tmp_path, how):
    flush = "1h" if how == "sigkill_before_flush" else "200ms"
    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": flush}}
    srv = ServerProcess(tmp_path, cfg).start()
    _send(srv, [10, 0, 0])           # baseline (started an hour ago): not counted
    _send(srv, [15, 3, 0])           # +5, +3
    if how == "sigterm":
        assert srv.stop() == 0
    else:
        time.sleep(1.0 if how == "sigkill_after_flush" else 0)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait(10)
        srv.proc = None
    again = ServerProcess(tmp_path, dict(cfg, aggregation={"flush_interval": "200ms"})).start()
    _send(again, [16, 5, 1])         # +1, +2, +1 — counted only if the baseline survived
    assert again.stop() == 0, again.output()
    assert _stored(tmp_path) == 8 + 4
