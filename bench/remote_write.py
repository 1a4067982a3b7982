"""Remote-write benchmark: what one core does with Prometheus remote-write
requests, from the snappy body to the aggregator (decompress, decode, extract,
record), without HTTP. Requests like Prometheus's: 2 000 series of one float
sample each (1.0 and 2.0), and 500 native histograms (schema 3, ~40 buckets).
Medians of 3 runs, process pinned to one core.

    python -m bench.remote_write [--seconds 3]
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import cramjam
import numpy as np

from collector.aggregate.aggregator import Aggregator, AggregatorSettings
from collector.model import SeriesCatalog
from collector.receiver import remote_write
from collector.receiver.ingest import Ingest
from collector.receiver.prompb import WriteRequest, WriteRequestV2
from collector.receiver.settings import ReceiverSettings
from collector.selfmetrics import SelfMetrics


def _v1(n: int, t_ms: int) -> bytes:
    req = WriteRequest()
    for i in range(n):
        ts = req.timeseries.add()
        for k, v in (("__name__", f"metric_{i % 50}_total"), ("instance", f"host-{i % 40}:9100"), ("job", "node"),
                     ("cpu", str(i % 8))):
            ts.labels.add(name=k, value=v)
        ts.samples.add(value=float(i), timestamp=t_ms)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def _v2(n: int, t_ms: int) -> bytes:
    symbols = ["", "__name__", "instance", "job", "node", "cpu"]
    index = {s: i for i, s in enumerate(symbols)}

    def ref(s: str) -> int:
        if s not in index:
            index[s] = len(symbols)
            symbols.append(s)
        return index[s]

    req = WriteRequestV2()
    for i in range(n):
        refs = [1, ref(f"metric_{i % 50}_total"), 5, ref(str(i % 8)), 2, ref(f"host-{i % 40}:9100"), 3, 4]
        ts = req.timeseries.add(labels_refs=refs)
        ts.metadata.type = 1
        ts.samples.add(value=float(i), timestamp=t_ms)
    req.symbols.extend(symbols)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def _hist(n: int, t_ms: int, count: int) -> bytes:
    rng = np.random.default_rng(0)
    req = WriteRequestV2(symbols=["", "__name__", "rpc_duration_seconds", "instance"] +
                         [f"host-{i}" for i in range(n)])
    base = 2 ** (2 ** -3)
    for i in range(n):
        ts = req.timeseries.add(labels_refs=[1, 2, 3, 4 + i], created_timestamp=t_ms - 60_000)
        idx = np.ceil(np.log(rng.lognormal(np.log(0.1), 0.5, 1000)) / math.log(base)).astype(int)
        lo, hi = int(idx.min()), int(idx.max())
        counts = np.bincount(idx - lo, minlength=hi - lo + 1) * count
        h = ts.histograms.add(count_int=int(counts.sum()), sum=1.0, schema=3, timestamp=t_ms)
        h.positive_spans.add(offset=lo, length=len(counts))
        h.positive_deltas.extend(np.diff(counts, prepend=0).tolist())
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def _rate(kind: str, make, items: int, seconds: float) -> float:
    ingest = Ingest(Aggregator(SeriesCatalog(), AggregatorSettings()), ReceiverSettings(), SelfMetrics())
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        body = make(n)
        data = remote_write.decompress(body, "snappy", 64 << 20)
        msg = remote_write.parse(kind, data)
        ingest.handle(kind, msg)
        n += 1
    return n * items / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    now = int(time.time() * 1000)
    bodies = {"v1": [_v1(2000, now + i) for i in range(4)], "v2": [_v2(2000, now + i) for i in range(4)],
              "hist": [_hist(500, now + i * 1000, i + 1) for i in range(8)]}
    cases = [("remote write 1.0, floats", remote_write.V1, lambda n: bodies["v1"][n % 4], 2000, "samples/s"),
             ("remote write 2.0, floats", remote_write.V2, lambda n: bodies["v2"][n % 4], 2000, "samples/s"),
             ("remote write 2.0, native histograms", remote_write.V2, lambda n: bodies["hist"][n % 8], 500,
              "histograms/s")]
    print(f"remote write, one core, in process (decompress + decode + extract + aggregate), median of 3:")
    for name, kind, make, items, unit in cases:
        rates = [_rate(kind, make, items, args.seconds) for _ in range(3)]
        print(f"  {name:38s} {statistics.median(rates):>12,.0f} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
