"""Limits and options of the OTLP receivers. Built by the service from the
validated config; plain values here so the receivers never read config."""
from __future__ import annotations

from dataclasses import dataclass

from collector.receiver.limits import LimitSettings
from collector.receiver.naming import label_name

MIB = 1024 * 1024


@dataclass(frozen=True)
class ReceiverSettings:
    max_request_bytes: int = 4 * MIB           # body as sent (compressed)
    max_decompressed_bytes: int = 32 * MIB     # body after Content-Encoding is undone
    max_items_per_request: int = 100_000       # spans, data points or log records
    max_attribute_length: int = 4096           # longer label values reject the item
    grpc_max_message_bytes: int = 32 * MIB
    span_dimensions: tuple[str, ...] = ()      # extra span labels: attribute names, span first, then resource
    tenant_label: bool = False                 # ingest tokens are configured: label series tenant="<tenant>"
    compiled: bool = True                      # protobuf traces take the compiled path where it is built
    limits: LimitSettings = LimitSettings()    # rate, concurrency and memory limits (collector.receiver.limits)

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_decompressed_bytes", "max_items_per_request",
                     "max_attribute_length", "grpc_max_message_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"receiver setting {name} must be positive, got {getattr(self, name)!r}")
        # A list from the config is accepted but stored as a tuple, so the settings stay hashable.
        object.__setattr__(self, "span_dimensions", tuple(self.span_dimensions))
        for d in self.span_dimensions:
            if not d or not isinstance(d, str):
                raise ValueError(f"span dimension must be a non-empty attribute name, got {d!r}")

    def dimension_labels(self) -> tuple[str, ...]:
        """Prometheus label names of the extra span dimensions (dots → underscores)."""
        return tuple(label_name(d) for d in self.span_dimensions)
