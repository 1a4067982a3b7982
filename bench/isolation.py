"""Isolation benchmark (issue 16): ingest with and without a heavy query load.

The real `tocsin serve` on one core (core 0) over a store holding 6 h of 10 s rows
for 100 series (10 services × 10 routes, as issue 17's side-by-side data; rollups done), the load generator on the other core. Each round
measures OTLP/HTTP ingest (1 000-span requests, 8 senders) alone, then the same
while four clients loop the 6 h per-route p95 range query:

    histogram_quantile(0.95, sum by (http_route) (rate(traces_span_metrics_duration_seconds[5m])))
    over 6 h at a 60 s step, minute-aligned as Grafana sends it

Rounds alternate (quiet, loaded, quiet, loaded, ...); medians per phase and the
ratios loaded / quiet are printed. Goal: throughput ≥ 0.8, p99 ≤ 2×.

    python -m bench.isolation [--seconds 8] [--rounds 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench import datagen
from bench.ingest import _load, _rss_kb, build_request
from collector.model import NS
from collector.store.duckdb_store import DuckDBStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from serverproc import ServerProcess  # noqa: E402

QUERY = "histogram_quantile(0.95, sum by (http_route) (rate(traces_span_metrics_duration_seconds[5m])))"
HOURS = 6


def prepare(path: Path) -> None:
    store = DuckDBStore(str(path))
    end = time.time_ns() // (10 * NS) * (10 * NS) - 1200 * NS
    datagen.fill(store, datagen.make_series(10, 10), end, HOURS * 3600)
    store.maintain(time.time_ns())   # steady state: rollups and sorting done
    store.close()


def run(seconds: float, rounds: int, concurrency: int = 8, query_clients: int = 4) -> dict:
    body = build_request(1000).SerializeToString()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        prepare(d / "tocsin.duckdb")
        cfg = {"aggregation": {"lateness": "10m"}, "rules": {"files": []},
               "query": {"timeout": "60s"}, "storage": {"maintenance_interval": "1h"}}
        srv = ServerProcess(d, cfg, env={"TOCSIN_LOG__LEVEL": "warning"}).start()
        try:
            if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(srv.proc.pid, {0})
                os.sched_setaffinity(0, {1})
            client = httpx.Client(base_url=srv.http_url, timeout=30, limits=httpx.Limits(max_connections=64))
            hdrs = {"Content-Type": "application/x-protobuf"}

            def send():
                return client.post("/v1/traces", content=body, headers=hdrs).status_code == 200

            send()
            phases: dict[str, list[dict]] = {"quiet": [], "loaded": []}
            query_times: list[float] = []
            for _ in range(rounds):
                for phase in ("quiet", "loaded"):
                    stop = threading.Event()
                    threads = []
                    if phase == "loaded":
                        end = time.time() // 60 * 60
                        form = {"query": QUERY, "start": end - HOURS * 3600, "end": end, "step": "60s"}

                        def loop():
                            with httpx.Client(base_url=srv.api_url, timeout=120) as c:
                                while not stop.is_set():
                                    t0 = time.perf_counter()
                                    r = c.post("/api/v1/query_range", data=form)
                                    if r.status_code == 200:
                                        query_times.append(time.perf_counter() - t0)

                        threads = [threading.Thread(target=loop, daemon=True) for _ in range(query_clients)]
                        for t in threads:
                            t.start()
                        time.sleep(1.0)   # the query load is running before ingest is measured
                    elapsed, lat, errors = _load(send, seconds, concurrency)
                    stop.set()
                    for t in threads:
                        t.join(120)
                    lat.sort()
                    phases[phase].append({"spans_per_s": len(lat) * 1000 / elapsed,
                                          "p50_ms": 1000 * statistics.median(lat),
                                          "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))], "errors": errors,
                                          "rss_mb": _rss_kb(srv.proc.pid) / 1024})
        finally:
            srv.stop()
            if hasattr(os, "sched_setaffinity"):
                os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    med = {ph: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for ph, rs in phases.items()}
    med["query_s"] = statistics.median(query_times) if query_times else float("nan")
    med["queries"] = len(query_times)
    return med


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    m = run(args.seconds, args.rounds)
    q, l = m["quiet"], m["loaded"]
    print(f"{'phase':30} {'spans/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'RSS MB':>7} errors")
    for name, r in (("ingest alone", q), ("ingest + 4 query clients", l)):
        print(f"{name:30} {r['spans_per_s']:>10,.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['rss_mb']:>7.0f} "
              f"{r['errors']:.0f}")
    print(f"ratio loaded/alone: throughput {l['spans_per_s'] / q['spans_per_s']:.2f} (goal >= 0.8), "
          f"p99 {l['p99_ms'] / q['p99_ms']:.2f}x (goal <= 2x); "
          f"{m['queries']} queries answered, median {m['query_s']:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
