"""Isolation: no query, rule or maintenance pass stalls ingest, health checks or
paging (issue 16). Each scenario runs against the real server while OTLP exports
arrive at a steady rate and /-/healthy is probed every 20 ms:

- a query with a catastrophic regular expression (`(a+)+b` against a route of
  35 a's and a c — exponential for a backtracking engine);
- a 24 h range query over every series at a 15 s step, looped by two clients;
- the first maintenance pass over a 24 h backlog of 10 s rows.

Every export is answered 200, /-/healthy within 100 ms, a latency rule that should
fire during the heavy work fires on time, the heavy query answers or times out
as configured; then SIGTERM arrives in the middle of the heavy work: the process
exits within its grace period and, after a restart, every acknowledged span is
counted exactly once.
"""
from __future__ import annotations

import shutil
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from serverproc import REPO, ServerProcess

# The three scenarios measure latency against a bound: `make test` runs them after the
# parallel part of the suite, alone, so that other tests do not load the machine under them.
pytestmark = pytest.mark.serial

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notify"))
from notify_fakes import FakeHTTP  # noqa: E402

sys.path.insert(0, str(REPO))
from bench import datagen  # noqa: E402
from collector.model import NS  # noqa: E402
from collector.store.duckdb_store import DuckDBStore  # noqa: E402

SPANS_PER_EXPORT = 20
EVIL_ROUTE = "a" * 35 + "c"
QUERY_TIMEOUT_S = 3.0
GRACE_S = 6.0
HEALTH_BOUND_S = 0.100
STALL_S = 0.5

RULES = """
groups:
  - name: isolation
    interval: 1s
    rules:
      - alert: CheckoutSlow
        latency:
          match: {service_name: checkout}
          quantile: 0.95
          window: 30s
          above: 500ms
          min_count: 1
        for: 0s
"""


def _kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def export_body(service: str, route: str, seconds: float, n: int, seq: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_kv("service.name", service))
    ss = rs.scope_spans.add()
    end = time.time_ns()
    for i in range(n):
        ss.spans.append(Span(trace_id=seq.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"),
                             name=f"GET {route}", kind=Span.SPAN_KIND_SERVER, attributes=[_kv("http.route", route)],
                             start_time_unix_nano=end - int(seconds * 1e9), end_time_unix_nano=end))
    return req.SerializeToString()


@pytest.fixture(scope="module")
def backlog(tmp_path_factory) -> Path:
    """A store holding 24 h of 10 s rows for 100 series, never maintained."""
    path = tmp_path_factory.mktemp("backlog") / "tocsin.duckdb"
    store = DuckDBStore(str(path))
    end = time.time_ns() // (10 * NS) * (10 * NS) - 600 * NS
    datagen.fill(store, datagen.make_series(10, 10), end, 24 * 3600)
    store.close()
    return path


class Watch:
    """Steady OTLP exports (one every 50 ms) and a /-/healthy probe (every 20 ms)."""

    def __init__(self, srv: ServerProcess):
        self.srv = srv
        self.stop = threading.Event()
        self.acked = 0
        self.failures: list[str] = []
        self.health: list[float] = []
        self.health_failures: list[str] = []
        self.threads = [threading.Thread(target=self._export, daemon=True),
                        threading.Thread(target=self._probe, daemon=True)]

    def start(self) -> "Watch":
        for t in self.threads:
            t.start()
        return self

    def _export(self) -> None:
        seq = 0
        with httpx.Client(base_url=self.srv.http_url, timeout=10) as c:
            while not self.stop.is_set():
                seq += 1
                try:
                    r = c.post("/v1/traces", content=export_body("frontend", "/home", 0.02, SPANS_PER_EXPORT, seq),
                               headers={"Content-Type": "application/x-protobuf"})
                except httpx.HTTPError as e:
                    if not self.stop.is_set():
                        self.failures.append(f"export {seq}: {type(e).__name__}")
                    return
                if r.status_code == 200:
                    self.acked += SPANS_PER_EXPORT
                elif not self.stop.is_set():
                    self.failures.append(f"export {seq}: HTTP {r.status_code}")
                self.stop.wait(0.05)

    def _probe(self) -> None:
        with httpx.Client(base_url=self.srv.api_url, timeout=5) as c:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    r = c.get("/-/healthy")
                    if r.status_code != 200:
                        self.health_failures.append(f"HTTP {r.status_code}")
                except httpx.HTTPError as e:
                    if self.stop.is_set():
                        return
                    self.health_failures.append(type(e).__name__)
                self.health.append(time.perf_counter() - t0)
                self.stop.wait(0.02)

    def halt(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def assert_healthy(self) -> None:
        assert not self.failures, f"exports not answered 200 during the heavy work: {self.failures[:5]}"
        assert not self.health_failures, f"/-/healthy failed: {self.health_failures[:5]}"
        assert len(self.health) > 50
        lat = sorted(self.health)
        p99, worst = lat[int(len(lat) * 0.99) - 1], lat[-1]
        summary = (f"median {statistics.median(lat) * 1000:.1f} ms, p99 {p99 * 1000:.0f} ms, "
                   f"worst {worst * 1000:.0f} ms over {len(lat)} probes")
        # 99 % within the bound; no probe near a stall. On a loaded 2-core CI machine the
        # OS can delay a single probe by itself (docs/decisions.md, issue 16).
        assert p99 < HEALTH_BOUND_S, summary
        assert worst < STALL_S, summary


def _config(hook_url: str) -> dict:
    return {
        "rules": {"files": ["rules.yaml"], "evaluation_interval": "1s"},
        "aggregation": {"flush_interval": "500ms"},
        "query": {"timeout": f"{QUERY_TIMEOUT_S}s", "max_concurrent": 2},
        "shutdown": {"grace": f"{GRACE_S}s"},
        "storage": {"maintenance_interval": "1s"},
        "notify": {"receivers": [{"name": "hook", "webhook": {"url": hook_url}}],
                   "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s"}},
    }


@pytest.fixture
def servers():
    """Every server a test starts is killed at the end, and every background
    client stopped (``servers.append(callable)``), whatever failed."""
    started: list = []
    yield started
    for item in reversed(started):
        if callable(item):
            item()
        elif item.proc is not None and item.proc.poll() is None:
            item.proc.kill()
            item.proc.wait(10)


def _start(tmp_path: Path, hook: FakeHTTP, db: Path | None, servers: list) -> ServerProcess:
    (tmp_path / "rules.yaml").write_text(RULES)
    if db is not None:
        shutil.copy(db, tmp_path / "tocsin.duckdb")
    srv = ServerProcess(tmp_path, _config(hook.url)).start()
    servers.append(srv)
    return srv


def _page_after_slow_spans(srv: ServerProcess, hook: FakeHTTP) -> float:
    """Send slow checkout spans; return seconds until the webhook got the firing page."""
    t0 = time.monotonic()
    r = httpx.post(f"{srv.http_url}/v1/traces", content=export_body("checkout", "/pay", 1.2, 5, 10**9),
                   headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200
    deadline = t0 + 20
    while time.monotonic() < deadline:
        for req in list(hook.requests):
            body = req.json()
            if body.get("status") == "firing" and any(a["labels"].get("alertname") == "CheckoutSlow"
                                                      for a in body.get("alerts", [])):
                return time.monotonic() - t0
        time.sleep(0.05)
    raise AssertionError("CheckoutSlow never paged")


def _sigterm_and_recount(srv: ServerProcess, watch: Watch, tmp_path: Path, hook: FakeHTTP) -> None:
    """SIGTERM in the middle of the heavy work: exit within the grace period, and
    every acknowledged frontend span is in the store exactly once after a restart."""
    t0 = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    code = srv.proc.wait(GRACE_S + 5)
    took = time.monotonic() - t0
    watch.halt()
    assert took <= GRACE_S + 1, f"exit took {took:.1f}s, grace is {GRACE_S}s"
    assert code in (0, 1), srv.output()[-2000:]
    again = ServerProcess(tmp_path, _config(hook.url)).start()   # replays the WAL if the grace ran out
    try:
        assert again.stop() == 0, again.output()[-2000:]
    finally:
        if again.proc is not None:
            again.proc.kill()
    con = duckdb.connect(str(tmp_path / "tocsin.duckdb"), read_only=True)
    try:
        (stored,) = con.execute(
            "SELECT coalesce(sum(count), 0) FROM latency WHERE metric = 'traces_span_metrics_duration_seconds' "
            "AND labels['service_name'] = 'frontend' AND resolution = INTERVAL 10 SECOND").fetchone()
    finally:
        con.close()
    assert stored == watch.acked, f"acknowledged {watch.acked} spans, stored {stored}"


@pytest.mark.timeout(180)
def test_catastrophic_regex_query_stalls_nothing(tmp_path, servers):
    hook = FakeHTTP(lambda req: (200, {}, "ok"))
    srv = _start(tmp_path, hook, None, servers)
    r = httpx.post(f"{srv.http_url}/v1/traces", content=export_body("frontend", EVIL_ROUTE, 0.01, 1, 1),
                   headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200
    watch = Watch(srv).start()
    servers.append(watch.halt)
    watch.acked += 1
    answers = []
    stop = threading.Event()
    servers.append(stop.set)

    def heavy():
        with httpx.Client(base_url=srv.api_url, timeout=30) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                q = c.get("/api/v1/query", params={"query": 'traces_span_metrics_calls_total{http_route=~"(a+)+b"}'})
                answers.append((q.status_code, time.monotonic() - t0, q.json()))

    workers = [threading.Thread(target=heavy, daemon=True) for _ in range(2)]
    try:
        for w in workers:
            w.start()
        time.sleep(1.0)
        paged_after = _page_after_slow_spans(srv, hook)
        time.sleep(1.0)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    watch_snapshot = list(watch.health)
    assert answers and all(code == 200 for code, _, _ in answers), answers[:3]
    assert all(body["data"]["result"] == [] for _, _, body in answers)   # (a+)+b never matches ...ac
    assert max(t for _, t, _ in answers) < QUERY_TIMEOUT_S   # linear time: answered, never timed out
    assert paged_after < 5.0, f"the rule paged {paged_after:.1f}s after the slow spans"
    assert len(watch_snapshot) > 50
    watch.assert_healthy()
    _sigterm_and_recount(srv, watch, tmp_path, hook)


@pytest.mark.timeout(240)
def test_day_long_range_query_over_every_series_stalls_nothing(tmp_path, backlog, servers):
    hook = FakeHTTP(lambda req: (200, {}, "ok"))
    srv = _start(tmp_path, hook, backlog, servers)
    watch = Watch(srv).start()
    servers.append(watch.halt)
    answers = []
    stop = threading.Event()
    servers.append(stop.set)
    end = time.time()
    query = {"query": "histogram_quantile(0.95, sum by (http_route) (rate(traces_span_metrics_duration_seconds[1m])))",
             "start": end - 86400, "end": end, "step": "15s"}

    def heavy():
        with httpx.Client(base_url=srv.api_url, timeout=60) as c:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    q = c.post("/api/v1/query_range", data=query)
                except httpx.HTTPError:
                    return   # the server went away under SIGTERM
                answers.append((q.status_code, time.monotonic() - t0, q.json().get("errorType")))

    workers = [threading.Thread(target=heavy, daemon=True) for _ in range(2)]
    for w in workers:
        w.start()
    time.sleep(2.0)
    paged_after = _page_after_slow_spans(srv, hook)
    deadline = time.monotonic() + 30
    while len(answers) < 2 and time.monotonic() < deadline:   # each answers or times out (+ a loaded CI)
        time.sleep(0.2)
    done = list(answers)
    assert done, "no heavy query finished"
    for code, took, err in done:
        assert code == 200 or (code == 503 and err == "timeout"), (code, err)
        # answered at its deadline (the gate does not wait for a busy thread to notice it)
        assert took < QUERY_TIMEOUT_S + 1.5, f"a query took {took:.1f}s with a {QUERY_TIMEOUT_S}s timeout"
    assert paged_after < 5.0, f"the rule paged {paged_after:.1f}s after the slow spans"
    watch.assert_healthy()
    _sigterm_and_recount(srv, watch, tmp_path, hook)   # the two clients are mid-query
    stop.set()


@pytest.mark.timeout(240)
def test_first_maintenance_of_a_large_backlog_stalls_nothing(tmp_path, backlog, servers):
    hook = FakeHTTP(lambda req: (200, {}, "ok"))
    srv = _start(tmp_path, hook, backlog, servers)
    watch = Watch(srv).start()
    servers.append(watch.halt)
    time.sleep(1.5)            # maintenance (every 1 s) has started on 24 h of unrolled rows
    paged_after = _page_after_slow_spans(srv, hook)
    with httpx.Client(base_url=srv.api_url, timeout=10) as c:
        t0 = time.monotonic()
        q = c.get("/api/v1/query", params={"query": "sum(rate(traces_span_metrics_calls_total[5m]))"})
        assert q.status_code == 200 and time.monotonic() - t0 < 2.0
    time.sleep(1.0)
    assert paged_after < 5.0, f"the rule paged {paged_after:.1f}s after the slow spans"
    watch.assert_healthy()
    metrics = httpx.get(f"{srv.api_url}/metrics").text
    assert "tocsin_store_maintenance_total" in metrics
    _sigterm_and_recount(srv, watch, tmp_path, hook)   # maintenance is still rolling up
