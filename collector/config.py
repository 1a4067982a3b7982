"""``tocsin.yaml``: one file, validated with pydantic. Unknown keys are errors;
every error is located (``file:line:col: key: message``, or the environment
variable that set the key) and says what is expected (``configerrors``). Any key
can be overridden from the environment: ``TOCSIN_STORAGE__PATH=/x`` sets
``storage.path`` (values are read as YAML scalars, so ``[a, b]`` is a list)."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from alerting.notify.config import NotifyConfig
from collector.configerrors import Locator, apply_env, fill_nulls, in_file_order, parse_path, validation_errors
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
    exemplars: bool = Field(True, description=(
        "Keep exemplars: per histogram series and slot, for every octave of the value, the slowest request "
        "that came with a trace id (from spans, OTLP metric exemplars and remote write). Stored and dropped "
        "with the slot-resolution rows (storage.retention.raw); rollups keep none. Served by "
        "/api/v1/query_exemplars and put in latency pages (notify.trace_url)."))

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


_SIZE_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_size(v: Any) -> int:
    """Bytes: an integer, or a number with a unit (``512MiB``, ``2GiB``, ``100MB``)."""
    if isinstance(v, bool):
        raise ValueError(f"expected a size such as 512MiB or 2GiB, got {v!r}")
    if isinstance(v, int):
        if v < 0:
            raise ValueError(f"a size cannot be negative, got {v}")
        return v
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(v))
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"expected a size such as 512MiB or 2GiB, got {v!r}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


Size = Annotated[int, BeforeValidator(parse_size)]


class PostgresConfig(Strict):
    dsn_env: str | None = Field(None, description="Environment variable holding the connection string "
                                "(`postgresql://user:password@host:5432/tocsin` or `host=... dbname=...`).")
    dsn_file: str | None = Field(None, description="File holding the connection string (e.g. a mounted Secret).")
    pool_size: int = Field(8, ge=2, le=1000, description="Connections to PostgreSQL (flush, queries, rules, "
                           "notifications share them).")
    statement_timeout: Duration = Field(30, gt=0, description="Statements running longer are cancelled.")
    connect_timeout: Duration = Field(5, gt=0, description="How long one connection attempt may take.")
    migrate: str = Field("auto", pattern="^(auto|check)$", description="auto: apply pending schema migrations at "
                         "start (under an advisory lock, one process at a time); check: refuse to start on an older "
                         "schema and name the command that upgrades it (`tocsin db upgrade`).")

    @model_validator(mode="before")
    @classmethod
    def _never_inline(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("dsn" in data or "password" in data):
            key = "dsn" if "dsn" in data else "password"
            raise ValueError(f"{key}: the connection string is never written in the config file; put it in an "
                             "environment variable (dsn_env) or a file (dsn_file)")
        return data

    @model_validator(mode="after")
    def _one_source(self) -> "PostgresConfig":
        if self.dsn_env and self.dsn_file:
            raise ValueError("give dsn_env or dsn_file, not both")
        return self


class StorageConfig(Strict):
    backend: str = Field("duckdb", pattern="^(duckdb|postgresql)$", description=(
        "duckdb (one embedded file, the default) or postgresql (a database several Tocsin processes can share; "
        "see storage.postgresql)."))
    path: str = Field("./data/tocsin.duckdb", description="DuckDB file (backend duckdb).")
    postgresql: PostgresConfig = PostgresConfig()
    wal: Annotated[bool, BeforeValidator(_on_off)] = Field(
        True, description="Write-ahead log: acknowledged data is on disk before the answer (on|off).")
    wal_dir: str = Field("", description="Directory of the write-ahead log. Empty: PATH-wal/ next to the DuckDB "
                         "file; ./data/tocsin-wal with PostgreSQL. One per process: never share it.")
    wal_max_size: Size = Field(1 << 30, description="While the store cannot be written (PostgreSQL down), ingest "
                               "keeps acknowledging into the WAL up to this size, then answers 503 + Retry-After / "
                               "UNAVAILABLE + RetryInfo. 0 = no bound.")
    retention: RetentionConfig = RetentionConfig()
    maintenance_interval: Duration = Field(60, description="How often rollups and retention run.")

    @model_validator(mode="after")
    def _postgres_has_dsn(self) -> "StorageConfig":
        pg = self.postgresql
        if self.backend == "postgresql" and not (pg.dsn_env or pg.dsn_file):
            raise ValueError("backend postgresql needs storage.postgresql.dsn_env or storage.postgresql.dsn_file "
                             "(the connection string is never written in the config file)")
        return self


class ApiConfig(Strict):
    listen: Listen = Field("127.0.0.1:9099", description="HTTP API: queries, rules, silences, /metrics.")
    external_url: str = Field("", description="URL users reach the API at (used in alert links).")


def _bounds(v: Any) -> tuple[float, ...]:
    if not isinstance(v, (list, tuple)):
        raise ValueError(f"expected a list of bucket bounds such as [5ms, 10ms, 100ms, 1s], got {v!r}")
    out = []
    for x in v:
        s = parse_duration(x)
        if not s > 0:
            raise ValueError(f"bucket bounds must be above 0, got {x!r}")
        out.append(float(f"{s:.12g}"))   # 1400ms is 1.4, not 1.4000000000000001
    if len(set(out)) != len(out):
        raise ValueError("bucket bounds must differ from each other")
    return tuple(sorted(out))


# The OpenTelemetry Collector span-metrics connector's default buckets (collector/query/classic.py).
SPANMETRICS_BUCKETS = ("2ms", "4ms", "6ms", "8ms", "10ms", "50ms", "100ms", "200ms", "400ms", "800ms", "1s",
                       "1400ms", "2s", "5s", "10s", "15s")


class QueryConfig(Strict):
    lookback_delta: Duration = Field(300, description="How far back an instant selector looks for a sample.")
    timeout: Duration = Field(30, description="Queries running longer are stopped (503 timeout).")
    max_samples: int = Field(50_000_000, gt=0, description="Samples one query may load (422 past it); a query "
                             "also stops (503) when the process goes above limits.memory.soft_limit_mib.")
    max_concurrent: int = Field(4, gt=0, description="API queries running at once, each in its own thread "
                                "(Prometheus: --query.max-concurrency); more wait in a queue.")
    max_queued: int = Field(64, ge=0, description="API queries waiting for a slot; past it 503 at once. A queued "
                            "query that gets no slot before its timeout answers 503 timeout.")
    head: Duration = Field(600, ge=0, description=(
        "Keep this much of the most recent slot-resolution histograms in memory (the head) as they are written, "
        "so rules and queries over recent windows do not read the store (Prometheus: its head block). 0 = off. "
        "Off by itself when other processes write to the same store."))
    head_max_rows: int = Field(2_000_000, gt=0, description=(
        "At most this many rows (one per series per slot) in the head; past it the oldest slots leave it first "
        "(about 100 bytes a row plus 12 per non-empty bucket)."))
    nice: int = Field(10, ge=0, le=19, description="Scheduling priority of query and maintenance threads "
                      "(Linux nice, 0-19): under CPU contention ingest, health checks, rules and notifications go "
                      "first; 0 = same as everything else.")
    classic_buckets: Annotated[tuple[float, ...], BeforeValidator(_bounds)] = Field(
        _bounds(list(SPANMETRICS_BUCKETS)), description=(
            "Bounds (durations, or numbers in seconds) of the classic `X_bucket{le=...}` series every HDR "
            "histogram also answers as, for dashboards and rules written for classic histograms. Default: the "
            "OpenTelemetry span-metrics connector's (2ms ... 15s). Explicit-bucket histograms use their own "
            "bounds. The native histogram is the accurate form."))


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


def _endpoint(v: Any) -> str:
    from urllib.parse import urlsplit

    if v in ("", None):
        return ""
    try:
        parts = urlsplit(str(v))
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expected an http:// or https:// URL such as http://otel-collector:4318, or empty "
                         f"for off; got {v!r}")
    return str(v)


class SelfTelemetryConfig(Strict):
    traces_endpoint: Annotated[str, BeforeValidator(_endpoint)] = Field(
        "", description="OTLP endpoint for Tocsin's own traces (http://HOST:PORT); empty = off. "
                        "Never Tocsin's own receiver (refused at start).")
    protocol: str = Field("http/protobuf", pattern="^(http/protobuf|grpc)$", description="http/protobuf or grpc.")
    service_name: str = Field("tocsin", description="service.name of Tocsin's own spans.")
    sample_ratio: float = Field(1.0, ge=0, le=1, description="Fraction of Tocsin's own traces kept.")


class LogConfig(Strict):
    level: str = Field("info", pattern="^(debug|info|warning|error)$", description="debug, info, warning, error.")
    format: str = Field("text", pattern="^(text|json)$", description="text, or json (one object per line).")


class ShutdownConfig(Strict):
    grace: Duration = Field(25, gt=0, description="SIGTERM/SIGINT: requests in flight finish, queries are "
                            "cancelled, what was acknowledged is flushed; past this the process exits anyway "
                            "(acknowledged data is in the write-ahead log). Keep it below Kubernetes' "
                            "terminationGracePeriodSeconds.")


class ClusterConfig(Strict):
    enabled: bool = Field(False, description=(
        "Run as one replica of several on one PostgreSQL (storage.backend: postgresql): every replica "
        "receives, flushes and answers queries; one leader, elected through PostgreSQL, evaluates rules and "
        "sends notifications (docs/cluster.md)."))
    replica_id: str = Field("", max_length=200, description=(
        "This replica's name, unique in the cluster: it keys the replica's heartbeat row and its write-ahead "
        "log markers. Empty: the host name (a StatefulSet pod's name is stable across restarts). Two live "
        "processes with one id are refused."))
    advertise_url: str = Field("", description="URL of this replica's API shown in /api/v1/status/cluster; "
                               "empty: http://<api.listen>.")
    heartbeat_interval: Duration = Field(1, gt=0, description=(
        "How often a replica writes its heartbeat row (liveness, flush watermark) and the leader confirms "
        "its lock."))
    failover_timeout: Duration = Field(15, gt=0, description=(
        "A leader that stopped (killed, frozen, cut off from PostgreSQL) is replaced within this time; a "
        "replica whose heartbeat is older is no longer counted as live. At least 4 heartbeat intervals."))
    visibility: Duration = Field(2, gt=0, description=(
        "A span acknowledged by any replica is visible to queries on every replica within this delay: "
        "replicas flush every min(aggregation.flush_interval, visibility / 2) and read new series every "
        "visibility / 4."))
    evaluation_wait: Duration = Field(10, ge=0, description=(
        "A rule group evaluated at time t first waits until every live replica has flushed what it "
        "acknowledged before t; past this wait the evaluation is skipped (state held, counted in "
        "tocsin_rule_evaluations_waited_total{outcome=\"skipped\"}) rather than judged on partial data."))

    @model_validator(mode="after")
    def _timings(self) -> "ClusterConfig":
        if self.failover_timeout < 4 * self.heartbeat_interval:
            raise ValueError(f"failover_timeout ({self.failover_timeout:g}s) must be at least 4 heartbeat "
                             f"intervals ({4 * self.heartbeat_interval:g}s): the leader's lease and PostgreSQL's "
                             "idle_session_timeout fit between them")
        return self


class SelfAlertsConfig(Strict):
    enabled: bool = Field(False, description=(
        "Built-in alerts about Tocsin itself (on in the example tocsin.yaml and the deploy/ configs), routed like "
        "any alert (match alertname=~\"Tocsin.*|Watchdog\"): "
        "TocsinWALNearFull, TocsinStoreUnavailable, TocsinNotificationsFailing, and with cluster.enabled "
        "TocsinReplicaDown, TocsinReplicaBehind, TocsinNoLeader."))
    watchdog: bool = Field(True, description=(
        "Watchdog: an alert that always fires while Tocsin can page. Route it to a dead man's switch outside "
        "Tocsin (a webhook with a short repeat_interval) that pages when it stops arriving."))
    wal_full_ratio: float = Field(0.8, gt=0, le=1, description="TocsinWALNearFull fires when the write-ahead log "
                                  "holds this fraction of storage.wal_max_size.")
    hold_for: Duration = Field(60, ge=0, description="How long a condition must hold before its alert fires "
                               "(`for:` of a rule; the Watchdog fires at once).")
    labels: dict[str, str] = Field(default_factory=lambda: {"severity": "critical"},
                                   description="Labels added to every self-alert (the Watchdog gets "
                                   "severity=\"none\").")


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
    shutdown: ShutdownConfig = ShutdownConfig()
    cluster: ClusterConfig = ClusterConfig()
    self_alerts: SelfAlertsConfig = SelfAlertsConfig()

    @model_validator(mode="after")
    def _cluster_needs_postgresql(self) -> "Config":
        if self.cluster.enabled and self.storage.backend != "postgresql":
            raise ValueError("cluster.enabled needs storage.backend: postgresql (replicas share one PostgreSQL; "
                             "a DuckDB file has one writer)")
        return self


class ConfigError(ValueError):
    """A config that cannot be used; ``errors`` holds one located line per problem
    (``FILE:LINE:COL: key: message``, or ``TOCSIN_VAR: key: message``)."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        super().__init__("\n".join(errors))


# Keys renamed between versions: old dotted path -> new one. A file using an old key
# keeps working and logs a warning naming the replacement; remove an entry only at
# a major version, with a note in the README.
RENAMED_KEYS: dict[str, str] = {}


def _apply_renames(raw: dict, renamed: dict[str, str], locator: Locator) -> list[str]:
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
            if target.get(key) is None:
                target[key] = {}
            target = target[key]
        if new_leaf in target:
            errors.append(locator.key_line(old, f"deprecated, and {new} is also set; keep only {new}"))
            continue
        target[new_leaf] = value
        log.warning("%s: config key %s is deprecated, use %s instead", locator.where(parse_path(old), "key"), old, new)
    return errors


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    locator: Locator      # where each key came from, for errors found later (secrets, rule files)


def _parse(text: str, source: str) -> tuple[Any, Any]:
    """(plain data, round-trip tree with positions)."""
    try:
        tree = YAML().load(text)
        data = YAML(typ="safe").load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = " ".join(x for x in (e.context, e.problem) if x)
        raise ConfigError(source, [f"{where}: not valid YAML: {what}"]) from None
    except YAMLError as e:
        raise ConfigError(source, [f"{source}: not valid YAML: {e}"]) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(source, [f"{source}:1:1: the top level must be a mapping (receivers:, storage:, ...)"])
    return data or {}, tree


def read_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None,
                renamed: dict[str, str] | None = None) -> LoadedConfig:
    """Load, apply renamed keys and environment overrides, validate. Raises
    ConfigError with every problem, each located in the file or the environment."""
    environ = dict(os.environ if environ is None else environ)
    raw: dict = {}
    tree = None
    source = "<defaults>"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise ConfigError(source, [f"{source}: cannot read the file: {e.strerror}"]) from e
        raw, tree = _parse(text, source)
    locator = Locator(source, tree)
    errors = _apply_renames(raw, RENAMED_KEYS if renamed is None else renamed, locator)
    env = apply_env(raw, environ, Config)
    locator.origins = env.origins
    errors += env.errors
    raw = fill_nulls(raw, Config)
    try:
        config = Config.model_validate(raw)
    except ValidationError as e:
        # never an empty list for an invalid file: fall back to pydantic's own words
        errors += validation_errors(e, Config, locator) or [f"{source}: {e}"]
        config = None
    if errors:
        raise ConfigError(source, in_file_order(errors))
    return LoadedConfig(config, locator)


def load_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None,
                renamed: dict[str, str] | None = None) -> Config:
    """The validated config (see ``read_config``). Raises ConfigError."""
    return read_config(path, environ, renamed).config


def default_config_path(environ: dict[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    if environ.get("TOCSIN_CONFIG"):
        return environ["TOCSIN_CONFIG"]
    return "tocsin.yaml" if os.path.exists("tocsin.yaml") else None
