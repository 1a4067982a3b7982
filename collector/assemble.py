"""How the running parts are built from the validated config: the one home of
the wiring that ``service.py`` (the main process) and ``workers.py`` (receiver
worker processes) share, so neither imports the other.

Sockets, the signal-less uvicorn server, receiver and aggregator settings,
retention — and, as backends are added, the store.
"""
from __future__ import annotations

import contextlib
import socket

import uvicorn

from collector.aggregate.aggregator import AggregatorSettings
from collector.config import Config
from collector.store.base import Retention


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def bind(listen: str, reuseport: bool = False) -> socket.socket:
    host, port = split_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:   # receivers.processes > 1: worker processes bind the same port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


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


def http_server(app) -> QuietServer:
    return QuietServer(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
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
                              max_series_per_metric=cfg.spanmetrics.max_series_per_metric)


def retention(cfg: Config) -> Retention:
    st, agg = cfg.storage, cfg.aggregation
    return Retention(by_res={int(agg.slot): int(st.retention.raw), 60: int(st.retention.minute),
                             3600: int(st.retention.hour)},
                     samples=int(st.retention.samples),
                     rollup_after=int(agg.lateness + 2 * agg.slot + 30))
