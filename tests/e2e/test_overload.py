"""Overload: the real server is sent 3× its measured capacity from many threads,
with a memory soft limit and a low concurrency limit.

Throughout: /-/healthy answers every poll (every 0.5 s, each under 2 s), RSS
stays under the hard limit, and every refused request got a retryable answer
(429 or 503 with Retry-After). After a graceful stop, DuckDB holds exactly the
spans that were acknowledged.

TOCSIN_OVERLOAD_SECONDS sets how long the overload lasts (default 20; the
issue's figure is 60: ``TOCSIN_OVERLOAD_SECONDS=60 pytest tests/e2e/test_overload.py``).
"""
import os
import threading
import time

import duckdb
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                        ExportTraceServiceResponse)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from serverproc import ServerProcess

SPANS_PER_REQUEST = 1000
OVERLOAD_SECONDS = float(os.environ.get("TOCSIN_OVERLOAD_SECONDS", "20"))
SENDERS = 12
PB = {"Content-Type": "application/x-protobuf"}
MIB = 1024 * 1024


def body(seed: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "overload"
    ss = rs.scope_spans.add()
    end = time.time_ns()
    for i in range(SPANS_PER_REQUEST):
        s = ss.spans.add(name=f"GET /r{i % 10}", kind=Span.SPAN_KIND_SERVER, end_time_unix_nano=end,
                         start_time_unix_nano=end - (1 + (i * 7919 + seed) % 500) * 1_000_000)
        s.attributes.add(key="http.route").value.string_value = f"/r{i % 10}"
    return req.SerializeToString()


def rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Load:
    """Sender threads, each paced to ``rate`` requests/s (0: as fast as answers come)."""

    def __init__(self, url: str):
        self.url = url
        self.acked = 0
        self.sent = 0
        self.refused: dict[int, int] = {}
        self.bad: list[str] = []
        self.lock = threading.Lock()

    def run(self, threads: int, seconds: float, rate: float = 0.0) -> None:
        stop_at = time.monotonic() + seconds

        def sender(k: int):
            cached, made = b"", 0.0
            nxt = time.monotonic()
            with httpx.Client(base_url=self.url, timeout=30) as c:
                while time.monotonic() < stop_at:
                    if rate:
                        nxt += 1 / rate
                        delay = nxt - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
                        elif delay < -1:
                            nxt = time.monotonic()   # far behind: do not burst to catch up
                    if time.monotonic() - made > 1:
                        cached, made = body(k), time.monotonic()
                    try:
                        r = c.post("/v1/traces", content=cached, headers=PB)
                    except httpx.HTTPError as e:
                        with self.lock:
                            self.bad.append(f"transport error {e!r}")
                        continue
                    with self.lock:
                        self.sent += 1
                        if r.status_code == 200:
                            ps = ExportTraceServiceResponse.FromString(r.content).partial_success
                            if ps.rejected_spans:
                                self.bad.append(f"partial success: {ps.error_message}")
                            self.acked += SPANS_PER_REQUEST - ps.rejected_spans
                        elif r.status_code in (429, 503) and r.headers.get("retry-after", "").isdigit():
                            self.refused[r.status_code] = self.refused.get(r.status_code, 0) + 1
                        else:
                            self.bad.append(f"{r.status_code} {r.headers} {r.content[:200]!r}")

        ts = [threading.Thread(target=sender, args=(k,)) for k in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()


def test_three_times_capacity_stays_healthy_bounded_and_loses_nothing(tmp_path):
    # baseline RSS of an idle server, to set the limits relative to it
    probe = ServerProcess(tmp_path / "probe", {"rules": {"files": []}})
    (tmp_path / "probe").mkdir()
    probe.start()
    time.sleep(0.5)
    base = rss_of(probe.proc.pid)
    probe.stop()
    soft_mib, hard_mib = base // MIB + 48, base // MIB + 320
    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": "1s"},
           "limits": {"max_concurrent_requests": 4,
                      "memory": {"soft_limit_mib": soft_mib, "hard_limit_mib": hard_mib}}}
    srv = ServerProcess(tmp_path, cfg).start()
    pid = srv.proc.pid
    try:
        load = Load(srv.http_url)
        t0 = time.monotonic()
        load.run(threads=3, seconds=3)
        capacity = load.acked / (time.monotonic() - t0)      # spans/s acknowledged
        assert capacity > 0, srv.output()

        health: list[tuple[float, int]] = []
        rss_max = [0]
        done = threading.Event()

        def watch():
            with httpx.Client(base_url=srv.api_url, timeout=2) as c:
                while not done.is_set():
                    t = time.monotonic()
                    try:
                        code = c.get("/-/healthy").status_code
                    except httpx.HTTPError:
                        code = 0
                    health.append((time.monotonic() - t, code))
                    rss_max[0] = max(rss_max[0], rss_of(pid))
                    done.wait(max(0.0, 0.5 - (time.monotonic() - t)))

        watcher = threading.Thread(target=watch)
        watcher.start()
        before = (load.acked, load.sent)
        t1 = time.monotonic()
        per_thread = 3 * capacity / SPANS_PER_REQUEST / SENDERS
        load.run(threads=SENDERS, seconds=OVERLOAD_SECONDS, rate=per_thread)
        elapsed = time.monotonic() - t1
        done.set()
        watcher.join()
        offered = (load.sent - before[1]) * SPANS_PER_REQUEST / elapsed
        print(f"capacity {capacity:,.0f} spans/s; offered {offered:,.0f} spans/s for {elapsed:.0f} s; "
              f"acknowledged {(load.acked - before[0]) / elapsed:,.0f} spans/s; refused {load.refused}; "
              f"RSS max {rss_max[0] // MIB} MiB (soft {soft_mib}, hard {hard_mib}); "
              f"health max {max(d for d, _ in health):.3f} s over {len(health)} polls")
        assert not load.bad, load.bad[:5]
        assert len(health) >= OVERLOAD_SECONDS, health
        assert all(code == 200 and d < 2 for d, code in health), [h for h in health if h[1] != 200 or h[0] >= 2]
        assert rss_max[0] < hard_mib * MIB
        assert sum(load.refused.values()) > 0, "the overload never reached a limit"
    finally:
        assert srv.stop() == 0, srv.output()[-3000:]
    con = duckdb.connect(str(tmp_path / "tocsin.duckdb"), read_only=True)
    stored = con.sql("SELECT sum(count)::BIGINT FROM latency WHERE metric = 'traces_span_metrics_duration_seconds'"
                     ).fetchall()[0][0]
    assert stored == load.acked
