"""Cost of Prometheus-exact float arithmetic (issue 12): compensated sums in
aggregations and *_over_time versus the plain numpy sums used before.

    .venv/bin/python -m bench.floatagg [--series 1000] [--steps 1441] [--runs 5]

1 000 gauge series (random reals, or mixed-sign values where cancellation is
possible) sampled every 15 s over 6 h; range queries at a 15 s step."""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from collector.model import KIND_GAUGE, NS, SampleRows, Series, SeriesCatalog, make_labels, series_id
from collector.query.engine import Engine
from collector.query.memsource import MemorySource


def source(n: int, points: int, mixed: bool) -> MemorySource:
    rng = np.random.default_rng(7)
    cat = SeriesCatalog()
    sids = []
    for i in range(n):
        lab = make_labels({"g": f"g{i % 10}", "i": str(i)})
        sid = series_id("m", lab)
        cat.add(Series(sid, "m", lab, KIND_GAUGE))
        sids.append(sid)
    ts = np.arange(points, dtype=np.int64) * 15 * NS
    vals = rng.random((n, points)) * 100
    if mixed:
        vals = vals - 50
    rows = SampleRows(np.repeat(np.array(sids, np.uint64), points), np.tile(ts, n), vals.ravel())
    return MemorySource(cat, samples=rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1441)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args(argv)
    points = a.steps + 20
    print(f"{a.series} series x {a.steps} steps, medians of {a.runs} runs (ms)")
    for mixed in (False, True):
        e = Engine(source(a.series, points, mixed), clock=lambda: 1e12)
        end = (points - 1) * 15
        for q in ("sum(m)", "avg by (g) (m)", "stddev(m)", "sum_over_time(m[5m])", "avg_over_time(m[5m])"):
            times = []
            for _ in range(a.runs):
                t0 = time.perf_counter()
                e.range(q, end - (a.steps - 1) * 15, end, 15)
                times.append((time.perf_counter() - t0) * 1000)
            print(f"{'mixed-sign' if mixed else 'positive  '}  {q:24s} {statistics.median(times):8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
