"""High cardinality: the real ``tocsin serve`` with 10 k and 100 k active series.

    python -m bench.cardinality [--series 10000 100000] [--minutes 3] [--runs 5]

Spans spread over ``series`` label sets (10 services × series/10 routes), one span per
series every 10 s (the slot), sent over OTLP/HTTP in time order for ``--minutes`` of
data ending now (``aggregation.lateness`` widened to take it at once), then kept
flowing live while the queries run. Reported per size: RSS once ingest is steady,
RSS per series above an idle server's, bytes on disk per series, the medians of

  count(traces_span_metrics_calls_total)
  histogram_quantile(0.95, sum by (service_name) (rate(traces_span_metrics_duration_seconds[1m])))

over HTTP, and the peak RSS over the whole run, queries included (target ≤ 1 GiB at
100 k). Prometheus 2.42 answers the same ``count`` over 100 k series in 0.21-0.28 s
(issue 17): the target is ≤ 0.25 s for ``count`` and ≤ 1 s for the p95 by service.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.vs_prometheus import NS, SLOT_S, SpanTemplate, RssSampler, _field, dir_bytes, rss_kb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serverproc import ServerProcess  # noqa: E402

SERVICES = 10
COUNT_Q = "count(traces_span_metrics_calls_total)"
P95_Q = ("histogram_quantile(0.95, sum by (service_name) "
         "(rate(traces_span_metrics_duration_seconds[1m])))")


def log(m: str) -> None:
    print(m, file=sys.stderr, flush=True)


def bodies(n_series: int, slot_starts: list[int], rnd, per_request: int = 20_000):
    """OTLP/HTTP bodies with one span per series per slot, at most ``per_request`` spans each."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    routes = n_series // SERVICES
    tmpl = [SpanTemplate(f"/r{r}") for r in range(routes)]
    res = [Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=f"svc{s}"))])
           .SerializeToString() for s in range(SERVICES)]
    step = max(1, per_request // SERVICES)
    for st in slot_starts:
        for r0 in range(0, routes, step):
            rr = range(r0, min(routes, r0 + step))
            out = []
            for s in range(SERVICES):
                scopes = []
                for r in rr:
                    end = np.array([st + int(rnd.integers(0, SLOT_S * NS))], np.int64)
                    dur = np.array([int(rnd.lognormal(np.log(0.05), 0.5) * NS)], np.int64)
                    scopes.append(tmpl[r].build(end, dur, rnd))
                out.append(_field(1, _field(1, res[s]) + _field(2, b"".join(scopes))))
            yield b"".join(out), len(rr) * SERVICES


def send(srv: ServerProcess, gen, threads: int = 3) -> int:
    import queue

    q: queue.Queue = queue.Queue(maxsize=threads * 2)
    sent = [0]
    errors: list[str] = []

    def worker():
        with httpx.Client(base_url=srv.http_url, timeout=120) as c:
            while (item := q.get()) is not None:
                for attempt in range(200):
                    r = c.post("/v1/traces", content=item[0], headers={"Content-Type": "application/x-protobuf"})
                    if r.status_code == 200:
                        sent[0] += item[1]
                        break
                    if r.status_code not in (429, 503):
                        errors.append(f"{r.status_code} {r.text[:200]}")
                        break
                    time.sleep(min(2.0, 0.05 * (attempt + 1)))

    ws = [threading.Thread(target=worker) for _ in range(threads)]
    for w in ws:
        w.start()
    for item in gen:
        q.put(item)
    for _ in ws:
        q.put(None)
    for w in ws:
        w.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed: {errors[0]}")
    return sent[0]


def one_size(n: int, minutes: float, runs: int, work: Path, idle_kb: int) -> dict:
    cfg = {"aggregation": {"lateness": f"{int(minutes * 60) + 600}s"},
           "spanmetrics": {"max_series_per_metric": n * 2},
           "storage": {"wal_dir": str(work / "wal")}, "rules": {"files": []}}
    env = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
    srv = ServerProcess(work, cfg, env=env).start(timeout=120)
    rss = RssSampler(srv.proc.pid)
    rnd = np.random.default_rng(n)
    try:
        now = time.time_ns() // (SLOT_S * NS) * SLOT_S * NS
        slots = [now - k * SLOT_S * NS for k in range(int(minutes * 60 / SLOT_S), 0, -1)]
        rss.set("backfill")
        t0 = time.perf_counter()
        spans = send(srv, bodies(n, slots, rnd))
        log(f"{n:,} series: {spans:,} spans of {minutes:g} min sent in {time.perf_counter() - t0:.0f} s")
        stop = threading.Event()
        live_slots = [0]

        def live():   # one span per series per slot, as it happens
            nxt = now + SLOT_S * NS
            while not stop.is_set():
                wait = (nxt + SLOT_S * NS - time.time_ns()) / NS
                if wait > 0 and stop.wait(wait):
                    return
                send(srv, bodies(n, [nxt], rnd))
                live_slots[0] += 1
                nxt += SLOT_S * NS

        feeder = threading.Thread(target=live, daemon=True)
        feeder.start()
        rss.set("ingest (steady)")
        time.sleep(25)
        steady = rss_kb(srv.proc.pid)
        rss.set("queries")
        times: dict[str, list[float]] = {COUNT_Q: [], P95_Q: []}
        answers = {}
        with httpx.Client(base_url=srv.api_url, timeout=300) as c:
            for k in range(runs + 1):
                for q in (COUNT_Q, P95_Q):
                    t1 = time.perf_counter()
                    r = c.get("/api/v1/query", params={"query": q})
                    dt = time.perf_counter() - t1
                    r.raise_for_status()
                    answers[q] = r.json()["data"]["result"]
                    if k:
                        times[q].append(dt)
        stop.set()
        feeder.join(60)
        time.sleep(6)   # the last flush
        disk = (work / "tocsin.duckdb").stat().st_size
        counted = float(answers[COUNT_Q][0]["value"][1]) if answers[COUNT_Q] else 0.0
        return {"series": n, "counted": counted, "steady_kb": steady,
                "per_series_b": (steady - idle_kb) * 1024 / n, "disk_per_series_b": disk / n,
                "count_ms": 1000 * statistics.median(times[COUNT_Q]),
                "p95_ms": 1000 * statistics.median(times[P95_Q]),
                "p95_groups": len(answers[P95_Q]), "peak_kb": max(rss.peaks.values()),
                "peaks": dict(rss.peaks), "live_slots": live_slots[0], "wal_b": dir_bytes(str(work / "wal"))}
    finally:
        rss.stop()
        srv.stop()


def idle_rss_kb(work: Path) -> int:
    env = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
    srv = ServerProcess(work, {"rules": {"files": []}}, env=env).start(timeout=120)
    try:
        time.sleep(3)
        return rss_kb(srv.proc.pid)
    finally:
        srv.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--minutes", type=float, default=3)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tocsin-bench-card-") as d:
        (Path(d) / "idle").mkdir()
        idle = idle_rss_kb(Path(d) / "idle")
        rows = []
        for n in args.series:
            w = Path(d) / f"n{n}"
            w.mkdir()
            rows.append(one_size(n, args.minutes, args.runs, w, idle))
            log(f"{n:,} series done: {rows[-1]}")
    print(f"idle server RSS {idle / 1024:.0f} MB; medians of {args.runs} queries over HTTP, "
          f"{args.minutes:g} min of data + live ingest")
    print(f"{'series':>8} {'RSS steady MB':>13} {'B/series RSS':>12} {'B/series disk':>13} {'count ms':>9} "
          f"{'p95/svc ms':>10} {'peak MB':>8}  pass (count ≤ 250 ms, p95 ≤ 1 s, peak ≤ 1 GiB at 100 k)")
    for r in rows:
        ok = r["count_ms"] <= 250 and r["p95_ms"] <= 1000 and (r["series"] < 100_000 or r["peak_kb"] <= 1 << 20)
        print(f"{r['series']:>8,} {r['steady_kb'] / 1024:>13.0f} {r['per_series_b']:>12.0f} "
              f"{r['disk_per_series_b']:>13.0f} {r['count_ms']:>9.1f} {r['p95_ms']:>10.1f} "
              f"{r['peak_kb'] / 1024:>8.0f}  {'yes' if ok else 'MISS'} (count answered {r['counted']:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
