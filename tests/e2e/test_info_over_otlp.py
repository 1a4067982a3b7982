"""OTLP resources become target_info, and info() joins their attributes onto
metrics over the real API — metrics sent by the real OpenTelemetry SDK to a
real `tocsin serve`."""
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource


def _send(srv, resource: dict) -> None:
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=srv.http_url + "/v1/metrics"),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create(resource))
    provider.get_meter("t").create_counter("jobs.done").add(3, {"queue": "q1"})
    assert provider.force_flush(10_000)
    provider.shutdown()


def test_info_joins_otlp_resource_attributes(server_factory):
    srv = server_factory({"rules": {"files": []}})
    _send(srv, {"service.name": "worker", "service.namespace": "shop", "service.instance.id": "w-1",
                "deployment.environment": "prod", "k8s.cluster.name": "eu-1"})
    _send(srv, {"service.name": "other"})
    with srv.client() as c:
        r = c.get("/api/v1/query", params={"query": 'target_info{job="shop/worker"}'}).json()
        assert r["status"] == "success", r
        (ti,) = r["data"]["result"]
        assert ti["value"][1] == "1"
        labels = ti["metric"]
        assert labels["job"] == "shop/worker" and labels["instance"] == "w-1"
        assert labels["deployment_environment"] == "prod" and labels["k8s_cluster_name"] == "eu-1"
        assert labels["__name__"] == "target_info" and "service_name" not in labels
        assert labels["telemetry_sdk_language"] == "python"   # the SDK's own resource attributes too

        r = c.get("/api/v1/query", params={"query": 'info(jobs_done_total, {k8s_cluster_name=~".+"})'}).json()
        (s,) = r["data"]["result"]
        assert s["metric"]["k8s_cluster_name"] == "eu-1" and "deployment_environment" not in s["metric"]
        assert s["metric"]["queue"] == "q1" and s["value"][1] == "3"
        r = c.get("/api/v1/query", params={"query": "sum by (deployment_environment) (info(jobs_done_total))"})
        assert {x["metric"].get("deployment_environment") for x in r.json()["data"]["result"]} == {"prod", None}
        r = c.get("/api/v1/query", params={"query": 'info(jobs_done_total{job="other"}, {k8s_cluster_name=~".+"})'})
        assert r.json()["data"]["result"] == []   # a data-label matcher with no info series drops the sample
