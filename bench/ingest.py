"""Ingest benchmark: the real `tocsin serve` on one core, a load generator on the other.

Requests are realistic: 1 000 SERVER spans, 8 attributes each, 20 routes, one
resource with 6 attributes (docs/performance-notes.md). Reports spans/s per server core, p99
request latency, server RSS, and — in the same run — the decode-only figure of
this machine, so the ratio is visible.

    python -m bench.ingest [--seconds 10] [--concurrency 8] [--processes N]

With ``--processes N`` > 1 (``receivers.processes``) the server is not pinned:
its N processes and the load generator share all cores, so the load generator
has no core of its own. Each load thread then uses its own HTTP connection and
gRPC channel, so that the kernel (SO_REUSEPORT) spreads them over the processes.
"""
from __future__ import annotations

import argparse
import gzip
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serverproc import ServerProcess  # noqa: E402

ROUTES = [f"/api/v1/resource{i}/{{id}}" for i in range(20)]


def _kv(k: str, v) -> KeyValue:
    if isinstance(v, int):
        return KeyValue(key=k, value=AnyValue(int_value=v))
    return KeyValue(key=k, value=AnyValue(string_value=v))


def build_request(n_spans: int = 1000, seed: int = 0, now_ns: int | None = None) -> ExportTraceServiceRequest:
    import random

    rnd = random.Random(seed)
    now_ns = now_ns or time.time_ns()
    rs = ResourceSpans()
    for k, v in [("service.name", "checkout"), ("service.version", "1.4.2"), ("host.name", "web-7"),
                 ("deployment.environment", "prod"), ("telemetry.sdk.language", "python"),
                 ("telemetry.sdk.name", "opentelemetry")]:
        rs.resource.attributes.append(_kv(k, v))
    ss = ScopeSpans()
    for i in range(n_spans):
        route = ROUTES[i % len(ROUTES)]
        dur = int(rnd.lognormvariate(-3, 0.8) * 1e9)
        end = now_ns - rnd.randrange(0, 5_000_000_000)
        sp = Span(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8), name=f"GET {route}",
                  kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=end - dur, end_time_unix_nano=end)
        for k, v in [("http.request.method", "GET"), ("http.route", route), ("http.response.status_code", 200),
                     ("url.scheme", "https"), ("server.address", "shop.example"), ("server.port", 443),
                     ("user_agent.original", "Mozilla/5.0"), ("client.address", "10.0.0.1")]:
            sp.attributes.append(_kv(k, v))
        ss.spans.append(sp)
    rs.scope_spans.append(ss)
    return ExportTraceServiceRequest(resource_spans=[rs])


def decode_only(body: bytes, seconds: float = 2.0) -> float:
    """Spans/s of `ExportTraceServiceRequest.FromString` plus touching every span."""
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        req = ExportTraceServiceRequest.FromString(body)
        for r in req.resource_spans:
            for s in r.scope_spans:
                for sp in s.spans:
                    sp.end_time_unix_nano
                    n += 1
    return n / (time.perf_counter() - t0)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _load(send, seconds: float, concurrency: int) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def worker():
        local, errs = [], 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            ok = send()
            local.append(time.perf_counter() - t0)
            errs += 0 if ok else 1
        with lock:
            latencies.extend(local)
            errors[0] += errs

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, latencies, errors[0]


def _rss_tree_kb(pid: int) -> int:
    """RSS of ``pid`` and its child processes (the receiver workers)."""
    total = _rss_kb(pid)
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):   # workers are started from a thread
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return total + sum(_rss_kb(c) for c in children)


def run(seconds: float, concurrency: int, n_spans: int = 1000, processes: int = 1,
        unpinned: bool = False) -> list[dict]:
    body = build_request(n_spans).SerializeToString()
    gz = gzip.compress(body, 6)
    results = [{"case": "decode only (this process)", "spans_per_s": decode_only(body)}]
    for wal in ("on", "off"):
        with tempfile.TemporaryDirectory() as d:
            results.extend(_server_cases(Path(d), wal, body, gz, seconds, concurrency, n_spans, processes,
                                         unpinned))
    return results


def _server_cases(d: Path, wal: str, body: bytes, gz: bytes, seconds: float, concurrency: int,
                  n_spans: int, processes: int = 1, unpinned: bool = False, extra_env: dict | None = None) -> list[dict]:
    """The three transports against one server with the WAL on or off
    (``extra_env``: e.g. the PostgreSQL backend, bench.postgres)."""
    cfg = {"aggregation": {"lateness": "10m"}, "storage": {"wal": wal}, "rules": {"files": []}}
    if processes > 1:
        cfg["receivers"] = {"processes": processes}
    srv = ServerProcess(d, cfg, env={"TOCSIN_LOG__LEVEL": "warning", **(extra_env or {})}).start()
    results = []
    try:
        if processes > 1 or unpinned:
            return _spread_cases(srv, wal, body, gz, seconds, concurrency, n_spans, processes)
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(srv.proc.pid, {0})  # server on core 0, load generator on core 1
            os.sched_setaffinity(0, {1})
        client = httpx.Client(base_url=srv.http_url, timeout=30, limits=httpx.Limits(max_connections=64))
        hdrs = {"Content-Type": "application/x-protobuf"}
        channel = grpc.insecure_channel(srv.grpc)
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                     request_serializer=None, response_deserializer=None)

        def http_plain():
            return client.post("/v1/traces", content=body, headers=hdrs).status_code == 200

        def http_gzip():
            return client.post("/v1/traces", content=gz, headers={**hdrs, "Content-Encoding": "gzip"}
                               ).status_code == 200

        def grpc_plain():
            export(body, timeout=30)
            return True

        for name, send in (("OTLP/HTTP protobuf", http_plain), ("OTLP/HTTP protobuf + gzip", http_gzip),
                           ("OTLP/gRPC", grpc_plain)):
            send()  # warm up
            elapsed, lat, errors = _load(send, seconds, concurrency)
            lat.sort()
            results.append({"case": f"{name}, WAL {wal}", "spans_per_s": len(lat) * n_spans / elapsed,
                            "p50_ms": 1000 * statistics.median(lat),
                            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))], "errors": errors,
                            "rss_mb": _rss_kb(srv.proc.pid) / 1024})
    finally:
        srv.stop()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return results

def _spread_cases(srv, wal: str, body: bytes, gz: bytes, seconds: float, concurrency: int, n_spans: int,
                  processes: int) -> list[dict]:
    """Like the cases above, unpinned, with one connection (or channel) per load thread."""
    local = threading.local()
    hdrs = {"Content-Type": "application/x-protobuf"}

    def client() -> httpx.Client:
        if getattr(local, "client", None) is None:
            local.client = httpx.Client(base_url=srv.http_url, timeout=30)
        return local.client

    def export():
        if getattr(local, "export", None) is None:
            # a channel of its own: gRPC shares one connection between equal channels otherwise
            channel = grpc.insecure_channel(srv.grpc, options=[("grpc.use_local_subchannel_pool", 1)])
            local.export = channel.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None, response_deserializer=None)
        return local.export

    def http_plain():
        return client().post("/v1/traces", content=body, headers=hdrs).status_code == 200

    def http_gzip():
        return client().post("/v1/traces", content=gz, headers={**hdrs, "Content-Encoding": "gzip"}
                             ).status_code == 200

    def grpc_plain():
        export()(body, timeout=30)
        return True

    results = []
    for name, send in (("OTLP/HTTP protobuf", http_plain), ("OTLP/HTTP protobuf + gzip", http_gzip),
                       ("OTLP/gRPC", grpc_plain)):
        local.__dict__.clear()
        send()  # warm up
        elapsed, lat, errors = _load(send, seconds, concurrency)
        lat.sort()
        results.append({"case": f"{name}, WAL {wal}, {processes} procs", "spans_per_s": len(lat) * n_spans / elapsed,
                        "p50_ms": 1000 * statistics.median(lat),
                        "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))], "errors": errors,
                        "rss_mb": _rss_tree_kb(srv.proc.pid) / 1024})
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--processes", type=int, default=1,
                   help="receivers.processes; > 1: the server is not pinned to one core (see above)")
    p.add_argument("--unpinned", action="store_true",
                   help="as with --processes > 1 (no pinning, a connection per load thread), for a like-for-like "
                        "baseline with --processes 1")
    args = p.parse_args(argv)
    res = run(args.seconds, args.concurrency, processes=args.processes, unpinned=args.unpinned)
    base = res[0]["spans_per_s"]
    print(f"{'case':40} {'spans/s':>10} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7} errors")
    for r in res:
        print(f"{r['case']:40} {r['spans_per_s']:>10,.0f} {r['spans_per_s'] / base:>6.2f} "
              f"{r.get('p50_ms', 0):>8.1f} {r.get('p99_ms', 0):>8.1f} {r.get('rss_mb', 0):>7.0f} "
              f"{r.get('errors', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
