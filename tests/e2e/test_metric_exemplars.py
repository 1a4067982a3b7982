"""Exemplars that come with metrics: OTLP histogram exemplars from the real
OpenTelemetry SDK (recorded inside spans, so they carry those spans' ids), and
Prometheus remote-write exemplars (1.0 and 2.0, the ``trace_id``/``traceID``
label), answered by ``/api/v1/query_exemplars`` on the real server."""
import sys
import time
from pathlib import Path

import cramjam
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import AlwaysOnExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from collector.receiver.prompb import WriteRequest, WriteRequestV2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_exemplars_end_to_end import exemplars  # noqa: E402

HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}
V2_TYPE = "application/x-protobuf;proto=io.prometheus.write.v2.Request"


@pytest.mark.timeout(120)
def test_otlp_histogram_exemplars_from_the_sdk(server_factory):
    srv = server_factory({"rules": {"files": []}})
    resource = Resource.create({"service.name": "shop"})
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=f"{srv.http_url}/v1/metrics"),
                                           export_interval_millis=60_000)
    meters = MeterProvider(metric_readers=[reader], resource=resource, exemplar_filter=AlwaysOnExemplarFilter())
    hist = meters.get_meter("shop").create_histogram("http.server.request.duration", unit="s",
                                                      explicit_bucket_boundaries_advisory=[0.05, 0.1, 0.5, 1, 2.5, 5])
    tracer = TracerProvider(resource=resource).get_tracer("shop")
    ids = {}
    for v in (0.02, 0.03, 0.3, 2.2):
        with tracer.start_as_current_span("GET /cart") as span:
            hist.record(v, {"http.route": "/cart"})
            ids[v] = format(span.get_span_context().trace_id, "032x")
    meters.force_flush()
    meters.shutdown()
    name = "http_server_request_duration_seconds"
    deadline = time.time() + 20
    data: list = []
    while time.time() < deadline and not data:
        data = exemplars(srv, name)
        time.sleep(0.2)
    got = {e["labels"]["trace_id"]: float(e["value"]) for s in data for e in s["exemplars"]}
    # the SDK's reservoir keeps one per bucket: the last of a bucket wins there
    assert ids[2.2] in got and got[ids[2.2]] == pytest.approx(2.2)
    assert ids[0.3] in got and set(got) <= set(ids.values())
    assert data[0]["seriesLabels"]["http_route"] == "/cart" and data[0]["seriesLabels"]["job"] == "shop"
    # the classic view at the SDK's own bounds: 2.2 s lies in (1, 2.5]
    by_le = {e["labels"]["trace_id"]: s["seriesLabels"]["le"] for s in exemplars(srv, f"{name}_bucket")
             for e in s["exemplars"]}
    assert by_le[ids[2.2]] == "2.5" and by_le[ids[0.3]] == "0.5"


def _snappy(msg) -> bytes:
    return bytes(cramjam.snappy.compress_raw(msg.SerializeToString()))


def test_remote_write_exemplars_v1_and_v2(server_factory):
    srv = server_factory({"rules": {"files": []}})
    t = int(time.time() * 1000)
    req = WriteRequest()
    ts = req.timeseries.add()
    for k, v in (("__name__", "rpc_duration_seconds_bucket"), ("le", "0.5"), ("job", "api")):
        ts.labels.add(name=k, value=v)
    ts.samples.add(value=12, timestamp=t)
    ex = ts.exemplars.add(value=0.42, timestamp=t - 500)
    ex.labels.add(name="trace_id", value="4bf92f3577b34da6a3ce929d0e0e4736")
    ex.labels.add(name="span_id", value="00f067aa0ba902b7")
    bad = ts.exemplars.add(value=0.1, timestamp=t)            # no trace id: not kept
    bad.labels.add(name="user", value="x")
    with srv.client() as c:
        r = c.post("/api/v1/write", content=_snappy(req), headers=HEADERS)
        assert r.status_code == 204, r.text
        symbols = ["", "__name__", "queue_seconds_total", "traceID", "a3ce929d0e0e4736", "q", "orders"]
        req2 = WriteRequestV2(symbols=symbols)
        ts2 = req2.timeseries.add(labels_refs=[1, 2, 5, 6])
        ts2.samples.add(value=3.5, timestamp=t)
        ts2.exemplars.add(labels_refs=[3, 4], value=1.25, timestamp=t)   # a 64-bit (Jaeger-style) trace id
        r = c.post("/api/v1/write", content=_snappy(req2), headers={**HEADERS, "Content-Type": V2_TYPE})
        assert r.status_code == 204, r.text
        assert r.headers["X-Prometheus-Remote-Write-Exemplars-Written"] == "1"
    (s,) = exemplars(srv, 'rpc_duration_seconds_bucket{job="api"}')
    assert s["seriesLabels"] == {"__name__": "rpc_duration_seconds_bucket", "le": "0.5", "job": "api"}
    assert s["exemplars"] == [{"labels": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                                          "span_id": "00f067aa0ba902b7"}, "value": "0.42", "timestamp": (t - 500) / 1000}]
    (s2,) = exemplars(srv, "queue_seconds_total")
    assert s2["exemplars"][0]["labels"] == {"trace_id": "0000000000000000a3ce929d0e0e4736"}
    assert float(s2["exemplars"][0]["value"]) == 1.25
