"""``target_info`` for OTLP resources, as the OpenTelemetry → Prometheus
compatibility spec (and Prometheus's own OTLP receiver) define it: one gauge
series per resource, value 1, labelled with the resource attributes in
Prometheus form plus ``job`` (``service.namespace/service.name``) and
``instance`` (``service.instance.id``) — the identifying labels PromQL's
``info()`` joins on. A resource without ``job`` and ``instance``, or without any
attribute beyond the identifying ones, gets none (as the spec says).

One sample per resource per slot is enough for a gauge that never changes: later
requests in the same slot skip the write. Call ``record_target_info`` once per
resource (not per span or point)."""
from __future__ import annotations

import threading
import weakref

import numpy as np

from collector.model import KIND_GAUGE, NS, make_labels
from collector.receiver.naming import label_name
from collector.receiver.values import any_to_str

METRIC = "target_info"
_IDENTIFYING = ("service.name", "service.namespace", "service.instance.id")
_MAX_REMEMBERED = 100_000

_last: "weakref.WeakKeyDictionary[object, dict]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def target_info_labels(attributes) -> dict[str, str] | None:
    """The series' labels (without ``tenant``), or None when the resource gets no
    target_info. ``attributes``: OTLP ``KeyValue`` messages, or (key, value) pairs."""
    attrs: dict[str, str] = {}
    for kv in attributes:
        if isinstance(kv, tuple):
            k, v = kv[0], kv[1] if isinstance(kv[1], str) else any_to_str(kv[1])
        else:
            k, v = kv.key, any_to_str(kv.value)
        attrs[k] = v
    name, ns, inst = (attrs.get(k, "") for k in _IDENTIFYING)
    job = f"{ns}/{name}" if ns and name else name
    data = {k: v for k, v in attrs.items() if k not in _IDENTIFYING and v != ""}
    if not (job or inst) or not data:
        return None
    out: dict[str, str] = {}
    for k, v in data.items():
        n = label_name(k)
        out[n] = f"{out[n]};{v}" if n in out else v   # colliding names join with ';' (as the spec)
    if job:
        out["job"] = job
    if inst:
        out["instance"] = inst
    return out


def record_target_info(aggregator, attributes, tenant: str | None = None) -> None:
    """Record the resource's target_info sample (value 1, now) through
    ``aggregator.record_samples`` unless it was recorded in the current slot.
    ``tenant`` (None: none) becomes the ``tenant`` label, as for the other series."""
    labels = target_info_labels(attributes)
    if labels is None:
        return
    if tenant is not None:
        labels["tenant"] = tenant
    lab = make_labels(labels)
    now = int(aggregator.clock())
    slot_ns = int(getattr(getattr(aggregator, "settings", None), "slot_seconds", 10)) * NS
    slot = now // slot_ns
    with _lock:
        seen = _last.setdefault(aggregator, {})
        if seen.get(lab) == slot:
            return
        if len(seen) >= _MAX_REMEMBERED:
            seen.clear()
        seen[lab] = slot
    aggregator.record_samples(METRIC, KIND_GAUGE, [lab], np.zeros(1, np.int64), np.array([now], np.int64),
                              np.ones(1), help="Target metadata (OTLP resource attributes).")
