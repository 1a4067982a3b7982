"""How the running parts are built from the validated config: the one home of
the wiring that ``service.py`` (the main process) and ``workers.py`` (receiver
worker processes) share, so neither imports the other.

Sockets, the signal-less uvicorn server, receiver and aggregator settings,
retention, the write-ahead log's place, and the store (``open_store``).
"""
from __future__ import annotations

import contextlib
import socket

import uvicorn

from collector import listen as listen_mod
from collector.aggregate.aggregator import AggregatorSettings
from collector.config import Config
from collector.listen import split_listen  # noqa: F401  (re-exported: callers use assemble.split_listen)
from collector.store.base import Retention


def bind(listen: str, reuseport: bool = False, key: str = "", first: bool = True) -> socket.socket:
    """A listening socket; raises ``listen.ListenError`` (one line naming the key
    and variable that move it) when the address is taken. See ``collector.listen``."""
    return listen_mod.bind(listen, key, reuseport=reuseport, first=first)


def sock_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns the signals."""

    def install_signal_handlers(self) -> None:  # uvicorn < 0.29
        pass

    @contextlib.contextmanager
    def capture_signals(self):  # uvicorn >= 0.29
        yield


def http_server(app, listener: str = "this port", grpc_hint: str = "gRPC goes to the OTLP/gRPC port") -> QuietServer:
    """``listener`` and ``grpc_hint`` make the line logged when a gRPC exporter is
    pointed at this HTTP port. uvicorn's loggers propagate to Tocsin's format."""
    return QuietServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, log_config=None,
                                      http=listen_mod.http_protocol(listener, grpc_hint),
                                      timeout_graceful_shutdown=10))


def receiver_settings(cfg: Config):
    from collector.receiver.limits import LimitSettings
    from collector.receiver.settings import ReceiverSettings

    otlp, lim = cfg.receivers.otlp, cfg.limits
    return ReceiverSettings(max_request_bytes=otlp.http.max_request_bytes,
                            max_decompressed_bytes=otlp.http.max_decompressed_bytes,
                            max_items_per_request=otlp.max_items_per_request,
                            max_attribute_length=otlp.max_attribute_length,
                            grpc_max_message_bytes=otlp.grpc.max_message_bytes,
                            span_dimensions=tuple(cfg.spanmetrics.dimensions),
                            tenant_label=bool(cfg.auth.ingest_tokens),
                            compiled=otlp.compiled,
                            limits=LimitSettings(spans_per_second=lim.rate.spans_per_second,
                                                 data_points_per_second=lim.rate.data_points_per_second,
                                                 burst_seconds=lim.rate.burst_seconds,
                                                 max_concurrent_requests=lim.max_concurrent_requests,
                                                 soft_limit_mib=lim.memory.soft_limit_mib,
                                                 hard_limit_mib=lim.memory.hard_limit_mib,
                                                 retry_after_seconds=lim.retry_after))


def aggregator_settings(cfg: Config) -> AggregatorSettings:
    agg = cfg.aggregation
    return AggregatorSettings(slot_seconds=int(agg.slot), lateness_seconds=int(agg.lateness),
                              future_skew_seconds=int(agg.future_skew),
                              max_series_per_metric=cfg.spanmetrics.max_series_per_metric,
                              exemplars=agg.exemplars)


def retention(cfg: Config) -> Retention:
    st, agg = cfg.storage, cfg.aggregation
    return Retention(by_res={int(agg.slot): int(st.retention.raw), 60: int(st.retention.minute),
                             3600: int(st.retention.hour)},
                     samples=int(st.retention.samples),
                     rollup_after=int(agg.lateness + 2 * agg.slot + 30))


def wal_dir(cfg: Config) -> str | None:
    """The write-ahead log's directory, or None when it is off. Next to the DuckDB
    file by default; with PostgreSQL ./data/tocsin-wal (a local disk of this
    process: every process, every replica, has its own)."""
    st = cfg.storage
    if not st.wal:
        return None
    if st.wal_dir:
        return st.wal_dir
    if st.backend == "postgresql":
        return "./data/tocsin-wal"
    return None if st.path == ":memory:" else st.path + "-wal"


def postgres_settings(cfg: Config, application_name: str = "tocsin"):
    """The PostgreSQL connection settings, the DSN read from dsn_env / dsn_file."""
    from collector.secrets import SecretError, read_secret
    from collector.store.base import StoreError
    from collector.store.postgres.connect import PgSettings

    pg = cfg.storage.postgresql
    try:
        dsn = read_secret("storage.postgresql.dsn", pg.dsn_env, pg.dsn_file)
    except SecretError as e:
        raise StoreError(str(e)) from None
    return PgSettings(dsn=dsn, pool_size=pg.pool_size, statement_timeout_s=pg.statement_timeout,
                      connect_timeout_s=pg.connect_timeout, migrate=pg.migrate, application_name=application_name)


def head(cfg: Config, clock):
    """The query head (recent slots in memory), or None when off. It must see every
    write, so it is off where other processes write to the same store (cluster mode)."""
    from collector.query.head import Head

    cluster = getattr(cfg, "cluster", None)
    if not cfg.query.head or (cluster is not None and getattr(cluster, "enabled", bool(cluster))):
        return None
    span = min(cfg.query.head, cfg.storage.retention.raw)
    return Head(span, int(cfg.aggregation.slot), clock, cfg.query.head_max_rows)


def open_store(cfg: Config, *, writer: str = "", wait_s: float = 0.0, read_only: bool = False):
    """The store the config names. ``writer``: whose WAL markers this process
    writes (a replica id; "" for a single process). ``wait_s``: with PostgreSQL,
    keep retrying an unreachable server this long (``tocsin serve --wait``).
    Raises StoreError (StoreUnavailable when the server cannot be reached)."""
    if cfg.storage.backend == "postgresql":
        from collector.store.postgres.store import PostgresStore

        return PostgresStore(postgres_settings(cfg), retention(cfg), writer=writer, wait_s=wait_s)
    from collector.store.duckdb_store import DuckDBStore

    return DuckDBStore(cfg.storage.path, retention(cfg), read_only=read_only, writer=writer)


def replica_id(cfg: Config) -> str:
    """The writer id of this process's WAL markers: the replica's id in a
    cluster, "" for a single process."""
    if not cfg.cluster.enabled:
        return ""
    from collector.cluster.node import replica_id as rid

    return rid(cfg)


def flush_interval(cfg: Config) -> float:
    """How often the flusher writes: in a cluster at least every visibility / 2,
    so what one replica acknowledged is visible on the others within it."""
    every = float(cfg.aggregation.flush_interval)
    if cfg.cluster.enabled:
        every = min(every, float(cfg.cluster.visibility) / 2)
    return every


def cluster_node(cfg: Config, store, catalog, metrics, now_s):
    """This process's part in a cluster (``collector.cluster.node``), or None."""
    if not cfg.cluster.enabled:
        return None
    from collector import __version__
    from collector.cluster.node import ClusterNode
    from collector.workers import SHIP_EVERY_S

    slack = SHIP_EVERY_S + float(cfg.aggregation.flush_interval) if cfg.receivers.processes > 1 else 0.0
    return ClusterNode(cfg, store, catalog, metrics, now_s, __version__, slack_s=slack)


def evaluator_cluster_args(node) -> dict:
    """What the rule manager needs in a cluster: the fence, the data gate, shared state."""
    if node is None:
        return {}
    return {"fence": node.fence, "data_ready": node.gate, "share_state": True}
