"""``tocsin.yaml``: one file, validated with pydantic. Unknown keys are errors;
every error names the key path and says what is expected. Any key can be
overridden from the environment: ``TOCSIN_STORAGE__PATH=/x`` sets
``storage.path`` (values are read as YAML scalars, so ``[a, b]`` is a list)."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from ruamel.yaml import YAML

from alerting.notify.config import NotifyConfig
from collector.durations import parse_duration

log = logging.getLogger(__name__)

Duration = Annotated[float, BeforeValidator(parse_duration)]


def _listen(v: Any) -> str:
    if not isinstance(v, str) or not re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$", v):
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:4318, port 0 picks a free port), got {v!r}")
    return v


Listen = Annotated[str, BeforeValidator(_listen)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GrpcConfig(Strict):
    listen: Listen = Field("127.0.0.1:4317", description="OTLP/gRPC address; port 0 picks a free port.")
    max_message_bytes: int = Field(32 << 20, gt=0, description="Largest gRPC message accepted.")


class HttpConfig(Strict):
    listen: Listen = Field("127.0.0.1:4318", description="OTLP/HTTP address; port 0 picks a free port.")
    max_request_bytes: int = Field(8 << 20, gt=0, description="Largest accepted body, as sent.")
    max_decompressed_bytes: int = Field(64 << 20, gt=0, description="Largest body after gzip/deflate.")


class OtlpConfig(Strict):
    grpc: GrpcConfig = GrpcConfig()
    http: HttpConfig = HttpConfig()
    max_items_per_request: int = Field(100_000, gt=0, description="Spans or data points in one request.")
    max_attribute_length: int = Field(4096, gt=0, description="Longest attribute value used as a label.")
    compiled: bool = Field(True, description=(
        "Decode protobuf trace requests with the compiled span path where it is built; false uses the "
        "pure-Python reference path. The log says at start which path is active and why."))


class ReceiversConfig(Strict):
    otlp: OtlpConfig = OtlpConfig()
    processes: int = Field(1, ge=1, le=64, description=(
        "Receiver processes. With N > 1, N-1 worker processes also bind the OTLP ports (SO_REUSEPORT) "
        "and ship what they aggregate to the main process, which owns the store, queries and rules. "
        "Rate limits and the memory limiter are then per process, and workers' self-metrics are not "
        "in /metrics."))


class SpanMetricsConfig(Strict):
    dimensions: list[str] = Field(default_factory=list,
                                  description="Extra span or resource attributes that become labels.")
    max_series_per_metric: int = Field(10_000, gt=0,
                                       description="New series past this fold into otel_metric_overflow=\"true\".")


class AggregationConfig(Strict):
    slot: Duration = Field(10, description="Width of a histogram time slot.")
    lateness: Duration = Field(300, description="Data ending longer ago than this is rejected.")
    future_skew: Duration = Field(300, description="Data ending further than this in the future is rejected.")
    flush_interval: Duration = Field(5, description="How often closed slots are written to the store.")

    @field_validator("slot")
    @classmethod
    def _slot_divides_minute(cls, v: float) -> float:
        if v < 1 or 60 % int(v) or int(v) != v:
            raise ValueError("slot must be a whole number of seconds that divides 60 (1s, 5s, 10s, 15s, 30s, 60s)")
        return v


class RetentionConfig(Strict):
    raw: Duration = Field(2 * 86400, description="Keep slot-resolution histograms this long.")
    minute: Duration = Field(30 * 86400, description="Keep 1-minute rollups this long.")
    hour: Duration = Field(400 * 86400, description="Keep 1-hour rollups this long.")
    samples: Duration = Field(30 * 86400, description="Keep float samples (counters, gauges) this long.")


def _on_off(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("on", "off", "true", "false"):
        return v.lower() in ("on", "true")
    raise ValueError(f"expected on or off, got {v!r}")


class StorageConfig(Strict):
    path: str = Field("./data/tocsin.duckdb", description="DuckDB file; the WAL lives in PATH-wal/.")
    wal: Annotated[bool, BeforeValidator(_on_off)] = Field(
        True, description="Write-ahead log: acknowledged data is on disk before the answer (on|off).")
    retention: RetentionConfig = RetentionConfig()
    maintenance_interval: Duration = Field(60, description="How often rollups and retention run.")


class ApiConfig(Strict):
    listen: Listen = Field("127.0.0.1:9099", description="HTTP API: queries, rules, silences, /metrics.")
    external_url: str = Field("", description="URL users reach the API at (used in alert links).")


class QueryConfig(Strict):
    lookback_delta: Duration = Field(300, description="How far back an instant selector looks for a sample.")
    timeout: Duration = Field(30, description="Queries running longer are stopped (503 timeout).")
    max_samples: int = Field(50_000_000, gt=0, description="Samples one query may load (422 past it).")


class RulesConfig(Strict):
    files: list[str] = Field(default_factory=lambda: ["rules/*.yaml"], description="Rule files (globs).")
    evaluation_interval: Duration = Field(60, description="Interval of groups that do not set `interval`.")


class TokenRef(Strict):
    token_env: str | None = Field(None, description="Environment variable holding the token.")
    token_file: str | None = Field(None, description="File holding the token.")
    tenant: str = Field("default", description="Ingest tokens only: the tenant this token sends as.")

    @field_validator("token_file")
    @classmethod
    def _one_source(cls, v, info):
        if v and info.data.get("token_env"):
            raise ValueError("give token_env or token_file, not both")
        return v


class AuthConfig(Strict):
    ingest_tokens: list[TokenRef] = Field(default_factory=list, description="OTLP ingest tokens: each `{token_env or token_file, tenant}`.")
    read_tokens: list[TokenRef] = Field(default_factory=list, description="Query and /metrics tokens: each `{token_env or token_file}`.")
    admin_tokens: list[TokenRef] = Field(default_factory=list, description="Reload and silence tokens: each `{token_env or token_file}`.")
    allow_unauthenticated: bool = Field(False, description="Allow binding beyond loopback without tokens.")


class RateLimitConfig(Strict):
    spans_per_second: float = Field(0, ge=0, description="Spans per second per tenant (token bucket); 0 = unlimited.")
    data_points_per_second: float = Field(0, ge=0,
                                          description="Metric data points per second per tenant; 0 = unlimited.")
    burst_seconds: float = Field(1, gt=0, description="Bucket size, in seconds of the rate: how far a burst may go "
                                 "above it. A refused request gets 429 + Retry-After / RESOURCE_EXHAUSTED + RetryInfo.")


class MemoryLimitConfig(Strict):
    soft_limit_mib: int = Field(0, ge=0, description="RSS above this: OTLP requests get 503 + Retry-After / "
                                "UNAVAILABLE + RetryInfo; 0 = off.")
    hard_limit_mib: int = Field(0, ge=0, description="RSS above this: every request but /-/healthy and /-/ready "
                                "gets 503; 0 = off.")

    @field_validator("hard_limit_mib")
    @classmethod
    def _hard_above_soft(cls, v, info):
        soft = info.data.get("soft_limit_mib") or 0
        if v and soft and v < soft:
            raise ValueError(f"hard_limit_mib ({v}) must be at least soft_limit_mib ({soft})")
        return v


class LimitsConfig(Strict):
    rate: RateLimitConfig = RateLimitConfig()
    memory: MemoryLimitConfig = MemoryLimitConfig()
    max_concurrent_requests: int = Field(64, gt=0, description="OTLP requests in progress (HTTP and gRPC together); "
                                         "past it 503 + Retry-After / UNAVAILABLE + RetryInfo.")
    retry_after: Duration = Field(1, gt=0, description="Delay suggested to senders refused for overload "
                                  "(memory, concurrency).")


class SelfTelemetryConfig(Strict):
    traces_endpoint: str = Field("", description="OTLP endpoint for Tocsin's own traces; empty = off. "
                                                 "Never Tocsin's own receiver (refused at start).")
    protocol: str = Field("http/protobuf", pattern="^(http/protobuf|grpc)$", description="http/protobuf or grpc.")
    service_name: str = Field("tocsin", description="service.name of Tocsin's own spans.")
    sample_ratio: float = Field(1.0, ge=0, le=1, description="Fraction of Tocsin's own traces kept.")


class LogConfig(Strict):
    level: str = Field("info", pattern="^(debug|info|warning|error)$", description="debug, info, warning, error.")
    format: str = Field("text", pattern="^(text|json)$", description="text, or json (one object per line).")


class Config(Strict):
    receivers: ReceiversConfig = ReceiversConfig()
    spanmetrics: SpanMetricsConfig = SpanMetricsConfig()
    aggregation: AggregationConfig = AggregationConfig()
    storage: StorageConfig = StorageConfig()
    api: ApiConfig = ApiConfig()
    query: QueryConfig = QueryConfig()
    rules: RulesConfig = RulesConfig()
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    auth: AuthConfig = AuthConfig()
    limits: LimitsConfig = LimitsConfig()
    self_telemetry: SelfTelemetryConfig = SelfTelemetryConfig()
    log: LogConfig = LogConfig()


class ConfigError(ValueError):
    """A config file that cannot be used; ``errors`` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: invalid configuration:\n  " + "\n  ".join(errors))


# Keys renamed between versions: old dotted path -> new one. A file using an old key
# keeps working and logs a warning naming the replacement; remove an entry only at
# a major version, with a note in the README.
RENAMED_KEYS: dict[str, str] = {}


def _apply_renames(raw: dict, renamed: dict[str, str], source: str) -> dict:
    errors = []
    for old, new in renamed.items():
        *old_parents, old_leaf = old.split(".")
        node = raw
        for key in old_parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict) or old_leaf not in node:
            continue
        value = node.pop(old_leaf)
        *new_parents, new_leaf = new.split(".")
        target = raw
        for key in new_parents:
            target = target.setdefault(key, {})
        if new_leaf in target:
            errors.append(f"{old}: deprecated, and {new} is also set; keep only {new}")
            continue
        target[new_leaf] = value
        log.warning("%s: config key %s is deprecated, use %s instead", source, old, new)
    if errors:
        raise ConfigError(source, errors)
    return raw


def _apply_env(raw: dict, environ: dict[str, str]) -> dict:
    yaml = YAML(typ="safe")
    for name, value in sorted(environ.items()):
        if not name.startswith("TOCSIN_") or "__" not in name and name.count("_") < 1:
            continue
        path = name[len("TOCSIN_"):].lower().split("__")
        if path[0] not in Config.model_fields or name == "TOCSIN_CONFIG":
            continue
        node = raw
        for key in path[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                break
        else:
            parsed = yaml.load(value) if value.strip() else value
            node[path[-1]] = parsed if parsed is not None else value
    return raw


def load_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None,
                renamed: dict[str, str] | None = None) -> Config:
    """Load, apply renamed keys and environment overrides, validate. Raises ConfigError."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(source, [f"cannot read the file: {e.strerror}"]) from e
        try:
            loaded = YAML(typ="safe").load(text)
        except Exception as e:  # ruamel raises several error types; all mean "not YAML"
            raise ConfigError(source, [f"not valid YAML: {e}"]) from e
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(source, ["the top level must be a mapping (receivers:, storage:, ...)"])
        raw = loaded or {}
    raw = _apply_renames(raw, RENAMED_KEYS if renamed is None else renamed, source)
    raw = _apply_env(raw, environ)
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        errors = []
        for err in e.errors():
            key = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling; see the configuration reference in README.md)"
            errors.append(f"{key}: {msg}")
        raise ConfigError(source, errors) from None


def default_config_path(environ: dict[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    if environ.get("TOCSIN_CONFIG"):
        return environ["TOCSIN_CONFIG"]
    return "tocsin.yaml" if os.path.exists("tocsin.yaml") else None
