"""target_info labels from resource attributes (the OTLP → Prometheus spec), and
one sample per resource per slot however many requests carry it."""
import numpy as np
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from collector.aggregate.aggregator import Aggregator
from collector.model import SeriesCatalog
from collector.receiver.target_info import record_target_info, target_info_labels


def kv(k, v):
    return KeyValue(key=k, value=AnyValue(string_value=v) if isinstance(v, str) else AnyValue(int_value=v))


def test_labels_follow_the_spec():
    attrs = [kv("service.name", "api"), kv("service.namespace", "shop"), kv("service.instance.id", "i-1"),
             kv("host.name", "h1"), kv("k8s.pod.uid", "u"), kv("process.pid", 42), kv("2fa", "x")]
    assert target_info_labels(attrs) == {"job": "shop/api", "instance": "i-1", "host_name": "h1",
                                         "k8s_pod_uid": "u", "process_pid": "42", "key_2fa": "x"}
    assert target_info_labels([kv("service.name", "api")]) is None            # nothing to add
    assert target_info_labels([kv("host.name", "h1")]) is None                # no job, no instance
    assert target_info_labels([("service.name", "a"), ("a.b", "1"), ("a_b", "2")]) == \
        {"job": "a", "a_b": "1;2"}                                            # colliding names join with ';'


def test_one_sample_per_resource_per_slot():
    now = [100 * 10**9]
    agg = Aggregator(SeriesCatalog(), clock=lambda: now[0])
    attrs = [kv("service.name", "api"), kv("host.name", "h1")]
    for _ in range(5):
        record_target_info(agg, attrs, "t1")
    now[0] += 10 * 10**9
    record_target_info(agg, attrs, "t1")
    (series,) = [s for s in agg.catalog.all() if s.metric == "target_info"]
    assert dict(series.labels) == {"job": "api", "host_name": "h1", "tenant": "t1"}
    _, samples = agg.snapshot(np.array([series.id], np.uint64), 0, 10**12)
    assert list(samples.value) == [1.0, 1.0] and list(samples.ts) == [100 * 10**9, 110 * 10**9]
