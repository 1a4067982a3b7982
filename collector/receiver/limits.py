"""Backpressure for the receivers: per-tenant rate limits (token buckets),
a bound on concurrent requests, and a memory limiter on the process's RSS.

Checked once per request, never per item: ``Limiter.enter`` before the body
is read (memory, concurrency), ``Limiter.charge`` once the item count is
known and before anything is aggregated or logged (rate). A refused request
is refused whole, with a retryable code and a delay:

| why                    | HTTP | gRPC               | reason label      |
| ---------------------- | ---- | ------------------ | ----------------- |
| tenant over its rate   | 429  | RESOURCE_EXHAUSTED | rate_limited      |
| too many in flight     | 503  | UNAVAILABLE        | too_many_requests |
| RSS over the soft limit| 503  | UNAVAILABLE        | memory_soft       |
| RSS over the hard limit| 503  | UNAVAILABLE        | memory_hard       |

503 rather than 429 for overload: the OpenTelemetry Python HTTP exporter
retries 503 but not 429. Above the hard limit the API refuses everything but
health too (``MemoryGuard``).
"""
from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from collector.memory import read_rss_bytes, release_memory
from collector.receiver.errors import ReceiveError

MIB = 1024 * 1024
DEFAULT_TENANT = "default"
R_RATE, R_CONCURRENCY, R_MEM_SOFT, R_MEM_HARD = "rate_limited", "too_many_requests", "memory_soft", "memory_hard"
OK, SOFT, HARD = 0, 1, 2
HEALTH_PATHS = ("/-/healthy", "/-/ready")


@dataclass(frozen=True)
class LimitSettings:
    spans_per_second: float = 0.0          # per tenant; 0 = unlimited
    data_points_per_second: float = 0.0    # per tenant; 0 = unlimited
    burst_seconds: float = 1.0             # bucket size = rate × burst_seconds
    max_concurrent_requests: int = 64      # OTLP requests in progress, both transports together
    soft_limit_mib: int = 0                # RSS above: refuse ingest (0 = off)
    hard_limit_mib: int = 0                # RSS above: refuse everything but health (0 = off)
    retry_after_seconds: float = 1.0       # delay suggested for 503 / UNAVAILABLE
    memory_check_interval: float = 0.1     # read RSS at most this often

    def __post_init__(self) -> None:
        for name in ("spans_per_second", "data_points_per_second", "soft_limit_mib", "hard_limit_mib"):
            if getattr(self, name) < 0:
                raise ValueError(f"limit {name} must be >= 0 (0 = off), got {getattr(self, name)!r}")
        for name in ("burst_seconds", "max_concurrent_requests", "retry_after_seconds"):
            if getattr(self, name) <= 0:
                raise ValueError(f"limit {name} must be positive, got {getattr(self, name)!r}")
        if self.soft_limit_mib and self.hard_limit_mib and self.hard_limit_mib < self.soft_limit_mib:
            raise ValueError(f"memory hard limit ({self.hard_limit_mib} MiB) is below the soft limit "
                             f"({self.soft_limit_mib} MiB)")


class Refused(ReceiveError):
    """A request refused whole for backpressure; the sender should retry later."""
    http_status = 503
    grpc_code = grpc.StatusCode.UNAVAILABLE

    def __init__(self, message: str, why: str, retry_after: float):
        super().__init__(message)
        self.why = why
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """Retry-After in whole seconds (HTTP allows no fractions), at least 1."""
        return str(max(1, math.ceil(self.retry_after)))

    def rpc_status(self, code: int) -> status_pb2.Status:
        """A ``google.rpc.Status`` carrying a ``RetryInfo`` with the delay."""
        st = status_pb2.Status(code=code, message=self.reason)
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(max(self.retry_after, 0.001) * 1e9))
        st.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        return st

    def grpc_trailers(self) -> tuple:
        code = code_pb2.RESOURCE_EXHAUSTED if self.grpc_code == grpc.StatusCode.RESOURCE_EXHAUSTED \
            else code_pb2.UNAVAILABLE
        return (("grpc-status-details-bin", self.rpc_status(code).SerializeToString()),)


class RateLimited(Refused):
    http_status = 429
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class TokenBucket:
    """``rate`` tokens per second up to ``capacity``. A request of n items fits
    when the bucket holds min(n, capacity): a request larger than the burst is
    not refused forever, it drives the bucket into debt instead, so the average
    rate still holds."""

    __slots__ = ("rate", "capacity", "tokens", "last")

    def __init__(self, rate: float, capacity: float, now: float):
        self.rate, self.capacity, self.tokens, self.last = rate, capacity, capacity, now

    def take(self, n: int, now: float) -> float:
        """Take ``n`` tokens and return 0, or take none and return the seconds to wait."""
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now
        need = min(n, self.capacity)
        if self.tokens >= need:
            self.tokens -= n
            return 0.0
        return (need - self.tokens) / self.rate


class MemoryGauge:
    """RSS against the soft and hard limits, read at most every ``interval`` s.
    Over the soft limit it calls ``release`` (at most every ``release_every`` s)
    before it reads again, so RSS can come back under the limit."""

    def __init__(self, soft_bytes: int, hard_bytes: int, interval: float = 0.1,
                 read_rss: Callable[[], int] = read_rss_bytes, clock: Callable[[], float] = time.monotonic,
                 release: Callable[[], None] = release_memory, release_every: float = 1.0):
        self.soft, self.hard, self.interval = soft_bytes, hard_bytes, interval
        self.read_rss, self.clock = read_rss, clock
        self.release, self.release_every = release, release_every
        self.enabled = bool(soft_bytes or hard_bytes)
        self.rss = 0
        self._next = -math.inf
        self._next_release = -math.inf
        self._state = OK
        if self.enabled:
            try:
                self.read_rss()
            except OSError:   # no /proc: the limiter cannot work, say so instead of guessing
                raise ValueError("limits.memory needs /proc/self/statm (Linux); set the limits to 0") from None

    def state(self) -> int:
        if not self.enabled:
            return OK
        now = self.clock()
        if now >= self._next:
            self._next = now + self.interval
            self.rss = rss = self.read_rss()
            self._state = HARD if self.hard and rss > self.hard else SOFT if self.soft and rss > self.soft else OK
            if self._state and now >= self._next_release:
                self._next_release = now + self.release_every
                self.release()
        return self._state



class Limiter:
    """One per service, shared by both transports (thread-safe: the tests run
    HTTP and gRPC on different threads)."""

    def __init__(self, settings: LimitSettings, metrics, clock: Callable[[], float] = time.monotonic,
                 memory: MemoryGauge | None = None):
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.memory = memory or MemoryGauge(settings.soft_limit_mib * MIB, settings.hard_limit_mib * MIB,
                                            settings.memory_check_interval, clock=clock)
        self.refused = metrics.requests_refused
        self.in_flight = 0
        self._lock = threading.Lock()
        self._rates = {"traces": settings.spans_per_second, "metrics": settings.data_points_per_second}
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def memory_below_soft(self) -> bool:
        """For work other than ingest (queries): stop before the soft limit is passed."""
        return self.memory.state() == OK

    # -- per request, before the body is read ---------------------------------
    def enter(self, signal: str) -> None:
        """Admit one request or raise ``Refused``; pair every success with ``leave``."""
        s = self.settings
        mem = self.memory.state()
        if mem:
            why = R_MEM_HARD if mem == HARD else R_MEM_SOFT
            self._refuse(signal, why, 0)
            raise Refused(f"memory limit reached (RSS {self.memory.rss // MIB} MiB); retry later", why,
                          s.retry_after_seconds)
        with self._lock:
            if self.in_flight >= s.max_concurrent_requests:
                full = True
            else:
                full = False
                self.in_flight += 1
        if full:
            self._refuse(signal, R_CONCURRENCY, 0)
            raise Refused(f"more than {s.max_concurrent_requests} requests in progress; retry later",
                          R_CONCURRENCY, s.retry_after_seconds)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    # -- per request, once the items are counted ------------------------------
    def charge(self, tenant: str, signal: str, items: int) -> None:
        """Take ``items`` from the tenant's bucket for ``signal`` or raise ``RateLimited``."""
        rate = self._rates.get(signal)
        if not rate or not items:
            return
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get((tenant, signal))
            if bucket is None:
                bucket = self._buckets[(tenant, signal)] = TokenBucket(
                    rate, max(rate * self.settings.burst_seconds, 1.0), now)
            wait = bucket.take(items, now)
        if wait:
            self._refuse(signal, R_RATE, items)
            noun = "spans" if signal == "traces" else "data points"
            raise RateLimited(f"tenant {tenant!r} is over its rate limit of {rate:g} {noun}/s; "
                              f"retry in {wait:.2f} s", R_RATE, wait)

    def _refuse(self, signal: str, why: str, items: int) -> None:
        self.refused.labels(signal, why).inc()
        if items:   # counted as received too: received = accepted + rejected + ignored
            self.metrics.items_received.labels(signal).inc(items)
            self.metrics.items_rejected.labels(signal, why).inc(items)

    def hard_limited(self) -> bool:
        return self.memory.state() == HARD


def count_items(signal: str, request) -> int:
    """Spans or data points in a decoded request: a loop over resources, scopes
    and metrics, never over the items themselves."""
    if signal == "traces":
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if signal == "metrics":
        n = 0
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind is not None:
                        n += len(getattr(m, kind).data_points)
        return n
    return 0


class MemoryGuard:
    """ASGI middleware for the API: above the hard memory limit, 503 +
    Retry-After for everything but ``/-/healthy`` and ``/-/ready``."""

    def __init__(self, app, limiter: Limiter):
        self.app, self.limiter = app, limiter

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in HEALTH_PATHS and self.limiter.hard_limited():
            self.limiter.refused.labels("api", R_MEM_HARD).inc()
            retry = str(max(1, math.ceil(self.limiter.settings.retry_after_seconds)))
            body = json.dumps({"status": "error", "errorType": "unavailable",
                               "error": "memory limit reached; retry later"}).encode()
            await send({"type": "http.response.start", "status": 503,
                        "headers": [(b"content-type", b"application/json"), (b"retry-after", retry.encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
