"""Query benchmark: the real Engine over LiveSource over a real DuckDBStore holding
1 000 HDR series × 24 h at 10 s (bench.datagen), before and after rollups.

    python -m bench.query [--hours 24] [--runs 5] [--dir DIR] [--prometheus]

Cases (targets from issue 3):
  p95_1h_one_series   instant histogram_quantile over rate(...[1h]) of one series (≤ 20 ms)
  p95_by_service_24h  range histogram_quantile by service over 24 h at 60 s step, 100 series (≤ 500 ms)

"cold" = a freshly opened store and a new engine for every run (its label index
built before timing; the OS page cache stays warm); "warm" = the same engine, the query repeated. Medians of ``--runs``.
Stores are kept in ``--dir`` and reused by later runs when given.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

from bench import datagen
from collector.aggregate.aggregator import Aggregator
from collector.model import NS, SeriesCatalog
from collector.query.engine import Engine
from collector.query.source import LiveSource
from collector.store.base import Retention
from collector.store.duckdb_store import DEFAULT_RETENTION, DuckDBStore

# 2025-01-02 00:05 UTC: the data ends 5 minutes into a day.
END_S = 1_735_776_000 + 300

ONE = ('histogram_quantile(0.95, rate(traces_span_metrics_duration_seconds'
       '{service_name="s1",http_route="/r1"}[1h]))')
BY_SERVICE = ('histogram_quantile(0.95, sum by (service_name) (rate(traces_span_metrics_duration_seconds'
              '{service_name=~"s[0-9]", http_route=~"/r[0-9]"}[5m])))')
TARGETS_MS = {"p95_1h_one_series": 20.0, "p95_by_service_24h": 500.0}


@dataclass
class Case:
    name: str
    run: object      # engine -> result


def cases(hours: float) -> list[Case]:
    end = float(END_S)
    start = end - hours * 3600
    return [Case("p95_1h_one_series", lambda e: e.instant(ONE, end)),
            Case("p95_by_service_24h", lambda e: e.range(BY_SERVICE, start, end, 60))]


def open_engine(path: str, retention: Retention = DEFAULT_RETENTION) -> tuple[DuckDBStore, Engine]:
    store = DuckDBStore(path, retention)
    catalog = SeriesCatalog()
    for s in store.load_series():
        catalog.add(s)
    agg = Aggregator(catalog, clock=lambda: END_S * NS)
    engine = Engine(LiveSource(store, agg), clock=lambda: float(END_S))
    engine.index.all()      # the label index is built once per process, not per query: not timed
    return store, engine


def build(path: str, hours: float, log) -> None:
    if os.path.exists(path):
        return
    store = DuckDBStore(path + ".tmp")
    p = datagen.make_series()
    t0 = time.perf_counter()
    n = datagen.fill(store, p, END_S * NS, int(hours * 3600))
    store.close()
    os.replace(path + ".tmp", path)
    log(f"built {path}: {n:,} rows in {time.perf_counter() - t0:.0f} s")


def maintained(src: str, dst: str, log) -> None:
    """The store as a running service keeps it: `maintain` (every minute in the
    service) has sorted the closed hours and rolled minutes and hours up; with the
    default retention every 10 s row is still there."""
    if os.path.exists(dst):
        return
    shutil.copyfile(src, dst + ".tmp")
    store = DuckDBStore(dst + ".tmp", DEFAULT_RETENTION)
    t0 = time.perf_counter()
    done = store.maintain(END_S * NS)
    store.close()
    os.replace(dst + ".tmp", dst)
    log(f"rolled {dst}: {done} in {time.perf_counter() - t0:.0f} s")


def measure(path: str, retention: Retention, hours: float, runs: int) -> list[dict]:
    out = []
    for c in cases(hours):
        cold = []
        for _ in range(runs):
            store, eng = open_engine(path, retention)
            t0 = time.perf_counter()
            res = c.run(eng)
            cold.append(time.perf_counter() - t0)
            store.close()
        store, eng = open_engine(path, retention)
        c.run(eng)
        warm = []
        for _ in range(runs):
            t0 = time.perf_counter()
            res = c.run(eng)
            warm.append(time.perf_counter() - t0)
        store.close()
        out.append({"case": c.name, "cold_ms": 1000 * statistics.median(cold),
                    "warm_ms": 1000 * statistics.median(warm), "series_out": len(res.to_json()["result"])})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=None, help="keep the generated stores here and reuse them")
    ap.add_argument("--prometheus", action="store_true", help="also run the queries in Prometheus")
    args = ap.parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    tmp = None
    d = args.dir
    if d is None:
        d = tmp = tempfile.mkdtemp(prefix="tocsin-bench-query-")
    os.makedirs(d, exist_ok=True)
    try:
        fine = os.path.join(d, f"fine-{args.hours:g}h.duckdb")
        kept = os.path.join(d, f"maintained-{args.hours:g}h.duckdb")
        build(fine, args.hours, log)
        maintained(fine, kept, log)
        rows = [("as written, before any maintenance", r) for r in
                measure(fine, DEFAULT_RETENTION, args.hours, args.runs)]
        rows += [("as the service keeps it (hours sorted, rollups)", r) for r in
                 measure(kept, DEFAULT_RETENTION, args.hours, args.runs)]
        prom = {}
        if args.prometheus:
            from bench import promcompare
            prom = promcompare.run(fine, args.hours, args.runs, log)
        print(f"{'store':46} {'case':20} {'cold ms':>8} {'warm ms':>8} {'target':>7} {'pass':>5}"
              + (f" {'prom ms':>8} {'ratio':>6}" if prom else ""))
        for store, r in rows:
            tgt = TARGETS_MS[r["case"]]
            line = (f"{store:46} {r['case']:20} {r['cold_ms']:>8.1f} {r['warm_ms']:>8.1f} {tgt:>7.0f} "
                    f"{'yes' if max(r['cold_ms'], r['warm_ms']) <= tgt else 'MISS':>5}")
            if prom and store.startswith("10 s"):
                pm = prom[r["case"]]
                line += f" {pm:>8.1f} {r['warm_ms'] / pm:>6.2f}"
            print(line)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
