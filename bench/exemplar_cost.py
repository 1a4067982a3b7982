"""What exemplar capture costs the compiled span path, in process: CPU per span of
``Ingest.handle`` on a realistic request (bench.ingest's: 1 000 SERVER spans, 20
routes) with ``aggregation.exemplars`` on and off, and — with ``--before DIR`` — a
source tree of the code before exemplars (``git archive <commit> collector alerting
bench tests/serverproc.py tests/yaml_writer.py`` with its extension built in place).
Each case runs in its own subprocess, cases alternate, CPU time (not wall time) is
measured, medians over the rounds are reported.

    python -m bench.exemplar_cost [--rounds 9] [--before /tmp/before]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
CODE = r'''
import sys, time, json
from bench.ingest import build_request
from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.model import SeriesCatalog
from collector.receiver import fastspans
from collector.receiver.ingest import Ingest
from collector.receiver.settings import ReceiverSettings
from collector.selfmetrics import SelfMetrics
body = build_request(1000).SerializeToString()
kw = {} if sys.argv[1] == "default" else {"exemplars": sys.argv[1] == "on"}
xs = []
for r in range(7):
    ing = Ingest(Aggregator(SeriesCatalog(), AggregatorSettings(lateness_seconds=600, **kw)), ReceiverSettings(),
                 SelfMetrics())
    assert ing.span_plan is not None, "the compiled path is not built"
    plan = ing.span_plan
    for _ in range(5):
        ing.handle("traces", fastspans.DecodedTraces(plan.parse(body), body))
    t0 = time.process_time()
    for _ in range(60):
        ing.handle("traces", fastspans.DecodedTraces(plan.parse(body), body))
    xs.append((time.process_time() - t0) / 60 / 1000 * 1e6)
print(json.dumps(sorted(xs)[len(xs) // 2]))
'''


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--before", type=Path, help="a source tree of the code before exemplars (see above)")
    args = p.parse_args(argv)
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1073741824", MALLOC_TRIM_THRESHOLD_="1073741824")
    cases = {"exemplars on": (HERE, "on"), "exemplars off": (HERE, "off")}
    if args.before:
        cases = {"before exemplars": (args.before.resolve(), "default"), **cases}
    res: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.rounds):
        for k, (tree, arg) in cases.items():
            out = subprocess.run([sys.executable, "-c", CODE, arg], cwd=tree, env=dict(env, PYTHONPATH=str(tree)),
                                 capture_output=True, text=True, check=True).stdout
            res[k].append(json.loads(out))
    base_name = "before exemplars" if args.before else "exemplars off"
    base = statistics.median(res[base_name])
    for k, v in res.items():
        print(f"{k:18} {statistics.median(v):.4f} µs/span (CPU, median of {len(v)})  "
              f"ratio to {base_name}: {statistics.median(v) / base:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
