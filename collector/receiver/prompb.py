"""Prometheus remote-write messages, built from their descriptors at import
time (no protoc, no generated code to keep in step with the protobuf runtime).

Field numbers and types are those of Prometheus's ``prompb/types.proto`` and
``prompb/remote.proto`` (remote write 1.0, package ``prometheus``) and
``prompb/io/prometheus/write/v2/types.proto`` (remote write 2.0); gogoproto
options only change Go code, not the wire format, so they are left out."""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
_T = {"double": F.TYPE_DOUBLE, "int64": F.TYPE_INT64, "uint64": F.TYPE_UINT64, "uint32": F.TYPE_UINT32,
      "sint32": F.TYPE_SINT32, "sint64": F.TYPE_SINT64, "string": F.TYPE_STRING}


def _message(fd: descriptor_pb2.FileDescriptorProto, name: str, fields: list[tuple], oneofs: tuple[str, ...] = (),
             enums: dict[str, list[str]] | None = None) -> None:
    m = fd.message_type.add(name=name)
    for oneof in oneofs:
        m.oneof_decl.add(name=oneof)
    for enum_name, values in (enums or {}).items():
        e = m.enum_type.add(name=enum_name)
        for i, v in enumerate(values):
            e.value.add(name=v, number=i)
    for spec in fields:
        fname, number, ftype, *rest = spec
        repeated = "repeated" in rest
        f = m.field.add(name=fname, number=number,
                        label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
        if ftype in _T:
            f.type = _T[ftype]
        elif ftype.startswith("enum:"):
            f.type, f.type_name = F.TYPE_ENUM, ftype[5:]
        else:
            f.type, f.type_name = F.TYPE_MESSAGE, ftype
        for r in rest:
            if r.startswith("oneof:"):
                f.oneof_index = oneofs.index(r[6:])


def _histogram(fd: descriptor_pb2.FileDescriptorProto, pkg: str, hints: list[str]) -> None:
    _message(fd, "BucketSpan", [("offset", 1, "sint32"), ("length", 2, "uint32")])
    span = f".{pkg}.BucketSpan"
    _message(fd, "Histogram", [
        ("count_int", 1, "uint64", "oneof:count"), ("count_float", 2, "double", "oneof:count"),
        ("sum", 3, "double"), ("schema", 4, "sint32"), ("zero_threshold", 5, "double"),
        ("zero_count_int", 6, "uint64", "oneof:zero_count"), ("zero_count_float", 7, "double", "oneof:zero_count"),
        ("negative_spans", 8, span, "repeated"), ("negative_deltas", 9, "sint64", "repeated"),
        ("negative_counts", 10, "double", "repeated"),
        ("positive_spans", 11, span, "repeated"), ("positive_deltas", 12, "sint64", "repeated"),
        ("positive_counts", 13, "double", "repeated"),
        ("reset_hint", 14, f"enum:.{pkg}.Histogram.ResetHint"), ("timestamp", 15, "int64"),
        ("custom_values", 16, "double", "repeated"),
    ], oneofs=("count", "zero_count"), enums={"ResetHint": hints})


def _v1() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="tocsin/prometheus_remote_v1.proto", package="prometheus",
                                            syntax="proto3")
    p = ".prometheus"
    _message(fd, "Label", [("name", 1, "string"), ("value", 2, "string")])
    _message(fd, "Sample", [("value", 1, "double"), ("timestamp", 2, "int64")])
    _message(fd, "Exemplar", [("labels", 1, f"{p}.Label", "repeated"), ("value", 2, "double"),
                              ("timestamp", 3, "int64")])
    _histogram(fd, "prometheus", ["UNKNOWN", "YES", "NO", "GAUGE"])
    _message(fd, "TimeSeries", [("labels", 1, f"{p}.Label", "repeated"), ("samples", 2, f"{p}.Sample", "repeated"),
                                ("exemplars", 3, f"{p}.Exemplar", "repeated"),
                                ("histograms", 4, f"{p}.Histogram", "repeated")])
    _message(fd, "MetricMetadata", [("type", 1, f"enum:{p}.MetricMetadata.MetricType"),
                                    ("metric_family_name", 2, "string"), ("help", 4, "string"), ("unit", 5, "string")],
             enums={"MetricType": ["UNKNOWN", "COUNTER", "GAUGE", "HISTOGRAM", "GAUGEHISTOGRAM", "SUMMARY", "INFO",
                                   "STATESET"]})
    _message(fd, "WriteRequest", [("timeseries", 1, f"{p}.TimeSeries", "repeated"),
                                  ("metadata", 3, f"{p}.MetricMetadata", "repeated")])
    return fd


def _v2() -> descriptor_pb2.FileDescriptorProto:
    pkg = "io.prometheus.write.v2"
    fd = descriptor_pb2.FileDescriptorProto(name="tocsin/prometheus_remote_v2.proto", package=pkg, syntax="proto3")
    p = f".{pkg}"
    _message(fd, "Sample", [("value", 1, "double"), ("timestamp", 2, "int64")])
    _message(fd, "Exemplar", [("labels_refs", 1, "uint32", "repeated"), ("value", 2, "double"),
                              ("timestamp", 3, "int64")])
    _message(fd, "Metadata", [("type", 1, f"enum:{p}.Metadata.MetricType"), ("help_ref", 3, "uint32"),
                              ("unit_ref", 4, "uint32")],
             enums={"MetricType": ["METRIC_TYPE_UNSPECIFIED", "METRIC_TYPE_COUNTER", "METRIC_TYPE_GAUGE",
                                   "METRIC_TYPE_HISTOGRAM", "METRIC_TYPE_GAUGEHISTOGRAM", "METRIC_TYPE_SUMMARY",
                                   "METRIC_TYPE_INFO", "METRIC_TYPE_STATESET"]})
    _histogram(fd, pkg, ["RESET_HINT_UNSPECIFIED", "RESET_HINT_YES", "RESET_HINT_NO", "RESET_HINT_GAUGE"])
    _message(fd, "TimeSeries", [("labels_refs", 1, "uint32", "repeated"), ("samples", 2, f"{p}.Sample", "repeated"),
                                ("histograms", 3, f"{p}.Histogram", "repeated"),
                                ("exemplars", 4, f"{p}.Exemplar", "repeated"), ("metadata", 5, f"{p}.Metadata"),
                                ("created_timestamp", 6, "int64")])
    _message(fd, "Request", [("symbols", 4, "string", "repeated"), ("timeseries", 5, f"{p}.TimeSeries", "repeated")])
    return fd


_POOL = descriptor_pool.DescriptorPool()
_V1 = _POOL.Add(_v1())
_V2 = _POOL.Add(_v2())

WriteRequest = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("prometheus.WriteRequest"))
WriteRequestV2 = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("io.prometheus.write.v2.Request"))

# MetricType numbers, equal in both versions
COUNTER, GAUGE, HISTOGRAM, GAUGEHISTOGRAM, SUMMARY = 1, 2, 3, 4, 5
RESET_GAUGE = 3
