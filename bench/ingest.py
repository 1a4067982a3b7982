"""Ingest benchmark: the real `tocsin serve` on one core, a load generator on the other.

Requests are realistic: 1 000 SERVER spans, 8 attributes each, 20 routes, one
resource with 6 attributes (docs/performance-notes.md). The compiled span path and the
pure-Python path each get their own server (both pinned to core 0); cases and
paths alternate within each round, and medians over the rounds are reported, so
both see the same (shared, noisy) machine. HTTP load comes from ``wrk`` where it
is installed (a Python client cannot send ~0.5 GB/s of bodies), gRPC load from
grpcio's client. Reported: spans/s (wall), spans per second of server CPU (user +
system, every thread — the per-core capacity, robust to other processes taking
the core), the server's CPU use, p50/p99 latency under closed-loop load, and,
with ``--latency-seconds``, p50/p99 at one paced load (80 % of the slower path's
capacity) that both paths get. Also, in this process: the decode-only figures
and where a request's CPU goes before HTTP and the WAL.

    python -m bench.ingest [--seconds 6] [--rounds 3] [--latency-seconds 8] [--path both|compiled|python]
                           [--wal both|on|off] [--processes N]

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


PATHS = ("compiled", "python")
# --path exemplars: the compiled path with exemplars on against the same path with them off
EXEMPLARS_OFF = "compiled-noexemplars"
CASES = ("OTLP/HTTP protobuf", "OTLP/HTTP protobuf + gzip", "OTLP/gRPC")


def compiled_parse_only(body: bytes, seconds: float = 2.0) -> float:
    """Spans/s of the compiled walker alone (decode, validate, series keys)."""
    from collector.receiver import fastspans
    from collector.receiver.settings import ReceiverSettings
    from collector.receiver.spans import SpanExtractor

    ex = SpanExtractor(None, ReceiverSettings())
    plan = fastspans.make_plan(ex._wanted, ex._dims, 4096)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += plan.parse(body).received
    return n / (time.perf_counter() - t0)


def inprocess_breakdown(body: bytes, n_spans: int, repeat: int = 7) -> list[dict]:
    """µs per request in this process, medians: where a request's CPU goes before HTTP and the WAL."""
    from collector.aggregate.aggregator import Aggregator, AggregatorSettings
    from collector.model import SeriesCatalog
    from collector.receiver import fastspans
    from collector.receiver.ingest import Ingest
    from collector.receiver.settings import ReceiverSettings
    from collector.selfmetrics import SelfMetrics

    def per_request(fn, n):
        xs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            xs.append((time.perf_counter() - t0) / n * 1e6)
        return statistics.median(xs)

    ing = Ingest(Aggregator(SeriesCatalog(), AggregatorSettings(lateness_seconds=600)), ReceiverSettings(),
                 SelfMetrics())
    noex = Ingest(Aggregator(SeriesCatalog(), AggregatorSettings(lateness_seconds=600, exemplars=False)),
                  ReceiverSettings(), SelfMetrics())
    ref = Ingest(Aggregator(SeriesCatalog(), AggregatorSettings(lateness_seconds=600)),
                 ReceiverSettings(compiled=False), SelfMetrics())
    rows = [("protobuf FromString (upb)", per_request(lambda: ExportTraceServiceRequest.FromString(body), 20))]
    if ing.span_plan is not None:
        plan = ing.span_plan
        rows.append(("compiled: decode + validate + series keys", per_request(lambda: plan.parse(body), 20)))
        for _ in range(3):   # interleaved, medians of the three: exemplars on vs off in the same minute
            rows.append(("compiled: ... + bucketing + aggregator (Ingest.handle)",
                         per_request(lambda: ing.handle("traces", fastspans.DecodedTraces(plan.parse(body), body)),
                                     20)))
            rows.append(("compiled: the same, aggregation.exemplars false",
                         per_request(lambda: noex.handle("traces", fastspans.DecodedTraces(plan.parse(body), body)),
                                     20)))
    rows.append(("reference: FromString + Python loop + numpy aggregator (Ingest.handle)",
                 per_request(lambda: ref.handle("traces", ExportTraceServiceRequest.FromString(body)), 2)))
    merged: dict[str, list[float]] = {}
    for k, v in rows:
        merged.setdefault(k, []).append(v)
    return [{"step": k, "us_per_request": statistics.median(v), "us_per_span": statistics.median(v) / n_spans}
            for k, v in merged.items()]


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _wrk(url: str, body_file: Path, headers: dict, seconds: float, connections: int) -> dict | None:
    """Closed-loop HTTP load with wrk (C, so the load generator is not the bottleneck the
    way a Python client is at ~0.5 GB/s of bodies); None when wrk is not installed."""
    import re
    import shutil
    import subprocess

    if not shutil.which("wrk"):
        return None
    lua = body_file.with_suffix(".lua")
    lines = ['wrk.method = "POST"', f'local f = io.open("{body_file}", "rb")', "wrk.body = f:read('*all')",
             "f:close()"] + [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    lua.write_text("\n".join(lines) + "\n")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(lua), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                         preexec_fn=(lambda: os.sched_setaffinity(0, {1})) if _pinnable() else None).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if not m:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    elapsed = float(m.group(2)) * _UNITS[m.group(3)] / 1000

    def pct(q):
        mm = re.search(rf"\s{q}%\s+([\d.]+)(\w+)", out)
        return float(mm.group(1)) * _UNITS[mm.group(2)] if mm else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": int(m.group(1)), "elapsed": elapsed, "p50_ms": pct(50), "p99_ms": pct(99),
            "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, errs.groups())) if errs else 0)}


def _pinnable() -> bool:
    return hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1


def _senders(srv, body: bytes, gz: bytes):
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

    return dict(zip(CASES, (http_plain, http_gzip, grpc_plain))), (client, channel)


def _paced(send, seconds: float, rate: float, concurrency: int) -> tuple[list[float], int]:
    """Open-loop load: requests scheduled at ``rate`` per second over ``concurrency``
    threads; latency counts from the scheduled time (no coordinated omission)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    t_start = time.perf_counter() + 0.05
    interval = concurrency / rate

    def worker(k: int):
        local, errs, i = [], 0, 0
        while True:
            due = t_start + (k / concurrency + i) * interval
            if due > t_start + seconds:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            ok = send()
            local.append(time.perf_counter() - due)
            errs += 0 if ok else 1
            i += 1
        with lock:
            latencies.extend(local)
            errors[0] += errs

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def _pct(lat: list[float], q: float) -> float:
    lat = sorted(lat)
    return 1000 * lat[int(q * (len(lat) - 1))] if lat else float("nan")


def run(seconds: float, concurrency: int, n_spans: int = 1000, processes: int = 1,
        unpinned: bool = False, rounds: int = 3, paths=PATHS, wals=("on", "off"),
        latency_seconds: float = 0.0) -> list[dict]:
    body = build_request(n_spans).SerializeToString()
    gz = gzip.compress(body, 6)
    results = [{"case": "decode only: protobuf FromString + touch every span (this process)",
                "spans_per_s": statistics.median(decode_only(body, 1.0) for _ in range(3))}]
    if "compiled" in paths:
        results.append({"case": "decode only: compiled walker (this process)",
                        "spans_per_s": statistics.median(compiled_parse_only(body, 1.0) for _ in range(3))})
    for row in inprocess_breakdown(body, n_spans):
        print(f"in process: {row['step']:72} {row['us_per_request']:8.0f} µs/request "
              f"{row['us_per_span']:6.3f} µs/span", file=sys.stderr)
    for wal in wals:
        with tempfile.TemporaryDirectory() as d:
            if processes > 1 or unpinned:
                results.extend(_server_cases(Path(d), wal, body, gz, seconds, concurrency, n_spans, processes,
                                             unpinned))
            else:
                results.extend(_interleaved(Path(d), wal, body, gz, seconds, concurrency, n_spans, rounds,
                                            paths, latency_seconds))
    return results


def _interleaved(d: Path, wal: str, body: bytes, gz: bytes, seconds: float, concurrency: int, n_spans: int,
                 rounds: int, paths, latency_seconds: float) -> list[dict]:
    """Every path has its own server (all pinned to core 0, the load generator on
    core 1); cases and paths alternate within each round, so both see the same
    machine. Medians over the rounds; then, at one offered load below the
    slowest path's capacity, the latency of each."""
    (d / "body.bin").write_bytes(body)
    (d / "body.gz").write_bytes(gz)
    servers = {}
    for path in paths:
        cfg = {"aggregation": {"lateness": "10m", "exemplars": path != EXEMPLARS_OFF}, "storage": {"wal": wal},
               "rules": {"files": []}, "receivers": {"otlp": {"compiled": path != "python"}}}
        (d / path).mkdir()
        servers[path] = ServerProcess(d / path, cfg, env={"TOCSIN_LOG__LEVEL": "info"}).start()
    pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
    runs: dict = {}
    try:
        for path, srv in servers.items():
            active = [ln for ln in srv.lines if "span ingest:" in ln]
            print(f"[{path}] {active[-1].strip() if active else 'no span ingest log line'}", file=sys.stderr)
            if pinned:
                os.sched_setaffinity(srv.proc.pid, {0})
        if pinned:
            os.sched_setaffinity(0, {1})
        senders = {path: _senders(srv, body, gz) for path, srv in servers.items()}
        for r in range(rounds):
            order = list(paths) if r % 2 == 0 else list(reversed(paths))
            for case in CASES:
                for path in order:
                    send = senders[path][0][case]
                    send()  # warm up
                    pid = servers[path].proc.pid
                    cpu0 = _cpu_s(pid)
                    w = None
                    if case != "OTLP/gRPC":   # HTTP: wrk where installed
                        gzipped = "gzip" in case
                        w = _wrk(f"http://{servers[path].http}/v1/traces", d / ("body.gz" if gzipped else "body.bin"),
                                 {"Content-Type": "application/x-protobuf",
                                  **({"Content-Encoding": "gzip"} if gzipped else {})}, seconds, concurrency)
                    if w is not None:
                        cpu = _cpu_s(pid) - cpu0
                        n_req, elapsed, p50, p99, errors = (w["requests"], w["elapsed"], w["p50_ms"], w["p99_ms"],
                                                            w["errors"])
                    else:
                        elapsed, lat, errors = _load(send, seconds, concurrency)
                        cpu = _cpu_s(pid) - cpu0
                        n_req, p50, p99 = len(lat), _pct(lat, 0.5), _pct(lat, 0.99)
                    runs.setdefault((case, path), []).append({
                        "spans_per_s": n_req * n_spans / elapsed,
                        "spans_per_cpu_s": n_req * n_spans / cpu if cpu else float("nan"),
                        "cpu_util": cpu / elapsed, "p50_ms": p50, "p99_ms": p99, "errors": errors,
                        "rss_mb": _rss_kb(pid) / 1024})
        results = []
        for case in CASES:
            base = statistics.median(x["spans_per_s"] for x in runs[(case, paths[-1])])
            rate = 0.8 * min(statistics.median(x["spans_per_s"] for x in runs[(case, p)]) for p in paths) / n_spans
            for path in paths:
                rs = runs[(case, path)]
                row = {"case": f"{case}, WAL {wal}, {path}", "path": path, "wal": wal, "transport": case,
                       "rounds": [round(x["spans_per_s"]) for x in rs]}
                for k in ("spans_per_s", "spans_per_cpu_s", "cpu_util", "p50_ms", "p99_ms", "rss_mb"):
                    row[k] = statistics.median(x[k] for x in rs)
                row["errors"] = sum(x["errors"] for x in rs)
                row["vs_python"] = row["spans_per_s"] / base if base else float("nan")
                if latency_seconds:
                    lat, errs = _paced(senders[path][0][case], latency_seconds, rate, concurrency)
                    row.update(paced_rate=rate * n_spans, paced_p50_ms=_pct(lat, 0.5),
                               paced_p99_ms=_pct(lat, 0.99), paced_errors=errs)
                results.append(row)
        for _, (client, channel) in senders.values():
            client.close()
            channel.close()
        return results
    finally:
        for srv in servers.values():
            srv.stop()
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def _server_cases(d: Path, wal: str, body: bytes, gz: bytes, seconds: float, concurrency: int,
                  n_spans: int, processes: int = 1, unpinned: bool = False, extra_env: dict | None = None) -> list[dict]:
    """The three transports against one server (default path) with the WAL on or off, unpinned
    (``extra_env``: e.g. the PostgreSQL backend, bench.postgres)."""
    cfg = {"aggregation": {"lateness": "10m"}, "storage": {"wal": wal}, "rules": {"files": []}}
    if processes > 1:
        cfg["receivers"] = {"processes": processes}
    srv = ServerProcess(d, cfg, env={"TOCSIN_LOG__LEVEL": "warning", **(extra_env or {})}).start()
    try:
        return _spread_cases(srv, wal, body, gz, seconds, concurrency, n_spans, processes)
    finally:
        srv.stop()

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
    p.add_argument("--seconds", type=float, default=10, help="per case and path, per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of interleaved cases; medians are reported")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--path", choices=("both",) + PATHS + ("exemplars",), default="both",
                   help="span path(s) to measure, each on its own server, interleaved; exemplars: the compiled "
                        "path with exemplars on and off (the 'vs' column is then on / off)")
    p.add_argument("--wal", choices=("both", "on", "off"), default="both")
    p.add_argument("--latency-seconds", type=float, default=0.0,
                   help="also measure latency at one paced load (80%% of the slower path's capacity)")
    p.add_argument("--processes", type=int, default=1,
                   help="receivers.processes; > 1: the server is not pinned to one core (see above)")
    p.add_argument("--unpinned", action="store_true",
                   help="as with --processes > 1 (no pinning, a connection per load thread), for a like-for-like "
                        "baseline with --processes 1")
    args = p.parse_args(argv)
    paths = PATHS if args.path == "both" else ("compiled", EXEMPLARS_OFF) if args.path == "exemplars" \
        else (args.path,)
    wals = ("on", "off") if args.wal == "both" else (args.wal,)
    res = run(args.seconds, args.concurrency, processes=args.processes, unpinned=args.unpinned,
              rounds=args.rounds, paths=paths, wals=wals, latency_seconds=args.latency_seconds)
    base = res[0]["spans_per_s"]
    print(f"{'case':52} {'spans/s':>10} {'/CPU-s':>10} {'util':>5} {'decode':>6} {'vs py':>6} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'RSS MB':>6} {'paced/s':>8} {'p50':>6} {'p99':>6}  rounds")
    for r in res:
        print(f"{r['case']:52} {r['spans_per_s']:>10,.0f} {r.get('spans_per_cpu_s', 0):>10,.0f} "
              f"{r.get('cpu_util', 0):>5.2f} "
              f"{r['spans_per_s'] / base:>6.2f} {r.get('vs_python', 0):>6.2f} {r.get('p50_ms', 0):>7.1f} "
              f"{r.get('p99_ms', 0):>7.1f} {r.get('rss_mb', 0):>6.0f} {r.get('paced_rate', 0):>8,.0f} "
              f"{r.get('paced_p50_ms', 0):>6.1f} {r.get('paced_p99_ms', 0):>6.1f}  {r.get('rounds', '')}"
              f"{'  errors=' + str(r['errors']) if r.get('errors') else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
