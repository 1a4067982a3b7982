"""Tocsin and Prometheus 2.42 side by side on the same data.

    python -m bench.vs_prometheus [--series 100] [--hours 6] [--rate 3.33] [--runs 7]
                                  [--backend duckdb|postgresql|both] [--keep DIR]

Data: ``--series`` label sets (5 services × routes) × ``--hours`` of spans ending now, each
series with its own request rate (Poisson, mean ``--rate`` per second, 20–46 per 10 s slot)
and a log-normal latency (median 20–300 ms, sigma 0.35–0.7; 3 % of the routes slow) — 100 ×
6 h ≈ 7.2 M observations by default.

* **Prometheus** (Debian's 2.42) gets them as classic histograms with 15 buckets (the OTel
  SDK's default bounds, 5 ms … 10 s, +Inf), scraped every 10 s: an OpenMetrics file turned into
  blocks by ``promtool tsdb create-blocks-from openmetrics``; the server is started on those
  blocks and left until its compactor has nothing more to do, then warmed up (every query run
  twice before timing).
* **Tocsin** gets the same observations as SERVER spans through its real OTLP/HTTP receiver
  (``tocsin serve``, compiled span path, WAL on, ``aggregation.lateness`` widened so 6 h old
  spans are accepted), then waits until its maintenance (flushes, rollups, sorted
  partitions) has converged — its steady state — and is warmed up the same way.

The five queries (same PromQL apart from Prometheus's classic ``_bucket``/``le`` form) run
interleaved, Tocsin then Prometheus, ``--runs`` times each over HTTP from this process;
medians and the Tocsin / Prometheus ratio are printed, with each server's error against the
exact values (computed here from the raw observations: nearest-rank quantiles of the
observations whose span ended in the window, and counts / window for rates), the RSS of both
servers after the queries, the peak RSS of Tocsin in each phase (ingest, the flush of the
backlog, maintenance until steady, queries, one long-range query over every series — phases
told apart by Tocsin's own flush and maintenance counters) and the disk both use (Tocsin's
also once the backlog is flushed, to see what maintenance adds).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from promproc import PrometheusProcess  # noqa: E402
from serverproc import ServerProcess  # noqa: E402

NS = 1_000_000_000
SLOT_S = 10
METRIC = "traces_span_metrics_duration_seconds"
BOUNDS = np.array([0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0])
SERVICES = 5


def log(m: str) -> None:
    print(m, file=sys.stderr, flush=True)


# -- data ------------------------------------------------------------------------------------------

@dataclass
class Data:
    services: list[str]
    routes: list[str]          # per series
    service_of: np.ndarray     # per series: index into services
    first_ns: int              # first slot start
    n_slots: int
    series: np.ndarray         # per observation (sorted by series, slot)
    slot: np.ndarray
    end_ns: np.ndarray
    dur_ns: np.ndarray
    offsets: np.ndarray        # (S, n_slots + 1): observations of series s, slots [a, b) = offsets[s, a]:offsets[s, b]

    @property
    def end_s(self) -> int:
        return (self.first_ns // NS) + self.n_slots * SLOT_S

    def labels(self, s: int) -> dict[str, str]:
        r = self.routes[s]
        return {"service_name": self.services[self.service_of[s]], "span_name": f"GET {r}",
                "span_kind": "SPAN_KIND_SERVER", "status_code": "STATUS_CODE_UNSET", "http_route": r}

    def window_values(self, series: list[int], t_s: float, w_s: float) -> np.ndarray:
        """Durations (s) of the spans of ``series`` whose slot ends in (t - w, t]."""
        # slot k ends at first + (k + 1) * 10
        first = self.first_ns / NS
        b = int(np.floor((t_s - first) / SLOT_S + 1e-9))        # slots < b end at or before t
        a = int(np.floor((t_s - w_s - first) / SLOT_S + 1e-9))  # slots < a end at or before t - w
        a, b = max(a, 0), min(b, self.n_slots)
        if a >= b:
            return np.zeros(0)
        parts = [self.dur_ns[self.offsets[s, a]:self.offsets[s, b]] for s in series]
        return np.concatenate(parts) / NS


def generate(n_series: int, hours: float, rate: float, end_s: int, seed: int = 7) -> Data:
    rnd = np.random.default_rng(seed)
    routes_per = n_series // SERVICES
    services = [f"svc{i}" for i in range(SERVICES)]
    routes = [f"/r{j}" for i in range(SERVICES) for j in range(routes_per)]
    service_of = np.repeat(np.arange(SERVICES), routes_per)
    S = len(routes)
    n_slots = int(hours * 3600) // SLOT_S
    first_ns = (end_s - n_slots * SLOT_S) * NS
    lam = rnd.uniform(0.6, 1.4, S) * rate * SLOT_S
    median = np.exp(rnd.uniform(np.log(0.02), np.log(0.3), S))
    slow = rnd.random(S) < 0.03
    median[slow] = rnd.uniform(0.6, 1.2, int(slow.sum()))
    sigma = rnd.uniform(0.35, 0.7, S)
    counts = rnd.poisson(lam[:, None], size=(S, n_slots))
    series = np.repeat(np.repeat(np.arange(S, dtype=np.int32), n_slots), counts.ravel())
    slot = np.repeat(np.tile(np.arange(n_slots, dtype=np.int32), S), counts.ravel())
    dur = np.exp(np.log(median)[series] + sigma[series] * rnd.standard_normal(len(series)))
    dur_ns = np.maximum((dur * NS).astype(np.int64), 1000)
    end_ns = first_ns + slot.astype(np.int64) * SLOT_S * NS + rnd.integers(0, SLOT_S * NS, len(series))
    offsets = np.zeros((S, n_slots + 1), np.int64)
    flat = np.concatenate([[0], np.cumsum(counts.ravel())])
    offsets[:, :n_slots] = flat[:-1].reshape(S, n_slots)
    offsets[:, n_slots] = flat[1:].reshape(S, n_slots)[:, -1]
    return Data(services, routes, service_of, first_ns, n_slots, series, slot, end_ns, dur_ns, offsets)


# -- Prometheus --------------------------------------------------------------------------------------

def _lab(d: Data, s: int) -> str:
    return ",".join(f'{k}="{v}"' for k, v in d.labels(s).items())


def write_openmetrics(d: Data, path: str) -> int:
    """Classic histograms scraped at every slot end (cumulative since the first slot)."""
    S = len(d.routes)
    b = np.searchsorted(BOUNDS, d.dur_ns / NS, side="left")          # le: value <= bound
    key = (d.series.astype(np.int64) * d.n_slots + d.slot) * (len(BOUNDS) + 1) + b
    per = np.bincount(key, minlength=S * d.n_slots * (len(BOUNDS) + 1)).reshape(S, d.n_slots, len(BOUNDS) + 1)
    cum = np.cumsum(np.cumsum(per, axis=1), axis=2)                  # over time, then over buckets (le)
    sums = np.bincount(d.series.astype(np.int64) * d.n_slots + d.slot, weights=d.dur_ns / NS,
                       minlength=S * d.n_slots).reshape(S, d.n_slots).cumsum(axis=1)
    les = [f"{x:g}" for x in BOUNDS] + ["+Inf"]
    ts = [f"{(d.first_ns // NS) + (k + 1) * SLOT_S}" for k in range(d.n_slots)]
    n = 0
    with open(path, "w") as f:
        f.write(f"# HELP {METRIC} Duration of SERVER spans.\n# TYPE {METRIC} histogram\n# UNIT {METRIC} seconds\n")
        for s in range(S):
            lab = _lab(d, s)
            heads = [f"{METRIC}_bucket{{{lab},le=\"{le}\"}} " for le in les]
            cnt_head, sum_head = f"{METRIC}_count{{{lab}}} ", f"{METRIC}_sum{{{lab}}} "
            rows = cum[s].tolist()
            sm = sums[s].tolist()
            out = []
            for k in range(d.n_slots):
                r, t = rows[k], ts[k]
                for j, h in enumerate(heads):
                    out.append(f"{h}{r[j]} {t}\n")
                out.append(f"{cnt_head}{r[-1]} {t}\n")
                out.append(f"{sum_head}{sm[k]!r} {t}\n")
            n += len(out)
            f.write("".join(out))
        f.write("# EOF\n")
    return n


def dir_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def start_prometheus(d: Data, work: Path) -> PrometheusProcess:
    om = work / "data.om"
    t0 = time.perf_counter()
    n = write_openmetrics(d, str(om))
    log(f"prometheus: {n:,} samples written as OpenMetrics ({om.stat().st_size / 1e6:.0f} MB) in "
        f"{time.perf_counter() - t0:.0f} s")
    t0 = time.perf_counter()
    (work / "prom" / "data").mkdir(parents=True, exist_ok=True)
    subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q", str(om), str(work / "prom" / "data")],
                   check=True)
    om.unlink()
    log(f"prometheus: blocks created in {time.perf_counter() - t0:.0f} s "
        f"({dir_bytes(str(work / 'prom' / 'data')) / 1e6:.1f} MB)")
    prom = PrometheusProcess(work / "prom", {"global": {"scrape_interval": "10s"}},
                             args=("--storage.tsdb.retention.time=30d",))
    prom.start()
    return prom


def prom_settled(prom: PrometheusProcess, min_age_s: float = 75, quiet_s: float = 20, timeout: float = 600) -> None:
    """Until the compactor has run (it first runs a minute after start) and its counters stopped moving."""
    t_start = time.time()
    last, since = None, time.time()
    while time.time() - t_start < timeout:
        txt = httpx.get(f"http://{prom.address}/metrics", timeout=10).text
        vals = tuple(line for line in txt.splitlines()
                     if line.startswith(("prometheus_tsdb_compactions_total", "prometheus_tsdb_blocks_loaded",
                                         "prometheus_tsdb_compactions_triggered_total")))
        if vals != last:
            last, since = vals, time.time()
        elif time.time() - t_start >= min_age_s and time.time() - since >= quiet_s:
            return
        time.sleep(2)


# -- Tocsin ------------------------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


class SpanTemplate:
    """One route's span as bytes (``ScopeSpans.spans`` entry) with its ids and times
    patched in by numpy: every span of a route has the same length."""

    START, END = 0x1111111111111111, 0x2222222222222222

    def __init__(self, route: str):
        from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
        from opentelemetry.proto.trace.v1.trace_pb2 import Span

        sp = Span(trace_id=b"\xaa" * 16, span_id=b"\xbb" * 8, name=f"GET {route}", kind=Span.SPAN_KIND_SERVER,
                  start_time_unix_nano=self.START, end_time_unix_nano=self.END)
        sp.attributes.append(KeyValue(key="http.route", value=AnyValue(string_value=route)))
        entry = _field(2, sp.SerializeToString())
        self.entry = np.frombuffer(entry, np.uint8)
        self.off_trace = entry.index(b"\xaa" * 16)
        self.off_span = entry.index(b"\xbb" * 8)
        self.off_start = entry.index(self.START.to_bytes(8, "little"))
        self.off_end = entry.index(self.END.to_bytes(8, "little"))

    def build(self, end_ns: np.ndarray, dur_ns: np.ndarray, rnd) -> bytes:
        n = len(end_ns)
        L = len(self.entry)
        a = np.tile(self.entry, n).reshape(n, L)
        a[:, self.off_trace:self.off_trace + 16] = rnd.integers(0, 256, (n, 16), dtype=np.uint8)
        a[:, self.off_span:self.off_span + 8] = rnd.integers(1, 256, (n, 8), dtype=np.uint8)
        a[:, self.off_start:self.off_start + 8] = (end_ns - dur_ns).astype("<u8").view(np.uint8).reshape(n, 8)
        a[:, self.off_end:self.off_end + 8] = end_ns.astype("<u8").view(np.uint8).reshape(n, 8)
        return a.tobytes()


def requests(d: Data, chunk_slots: int = 30):
    """OTLP/HTTP bodies in time order: per chunk of slots, one request per service."""
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    rnd = np.random.default_rng(3)
    tmpl = [SpanTemplate(r) for r in d.routes]
    res = [Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=s))]).SerializeToString()
           for s in d.services]
    for a in range(0, d.n_slots, chunk_slots):
        b = min(d.n_slots, a + chunk_slots)
        for svc in range(len(d.services)):
            scopes = []
            n = 0
            for s in np.nonzero(d.service_of == svc)[0].tolist():
                lo, hi = d.offsets[s, a], d.offsets[s, b]
                if hi > lo:
                    scopes.append(_field(2, tmpl[s].build(d.end_ns[lo:hi], d.dur_ns[lo:hi], rnd)))
                    n += hi - lo
            yield _field(1, _field(1, res[svc]) + b"".join(scopes)), n


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Peak RSS of a process per named phase, sampled every 100 ms."""

    def __init__(self, pid: int):
        self.pid = pid
        self.phase = "start"
        self.peaks: dict[str, int] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.1):
            r = rss_kb(self.pid)
            self.peaks[self.phase] = max(self.peaks.get(self.phase, 0), r)

    def set(self, phase: str) -> None:
        self.phase = phase

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


def load_tocsin(d: Data, srv: ServerProcess, threads: int = 3) -> tuple[float, int]:
    """Send every span; returns (seconds, spans accepted)."""
    import queue

    q: queue.Queue = queue.Queue(maxsize=threads * 2)
    sent = [0]
    errors: list[str] = []
    lock = threading.Lock()

    def worker():
        with httpx.Client(base_url=srv.http_url, timeout=120) as c:
            while True:
                item = q.get()
                if item is None:
                    return
                body, n = item
                for attempt in range(100):
                    r = c.post("/v1/traces", content=body, headers={"Content-Type": "application/x-protobuf"})
                    if r.status_code == 200:
                        break
                    if r.status_code in (429, 503):
                        time.sleep(min(2.0, 0.05 * (attempt + 1)))
                        continue
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    break
                with lock:
                    sent[0] += n

    ws = [threading.Thread(target=worker) for _ in range(threads)]
    for w in ws:
        w.start()
    t0 = time.perf_counter()
    for item in requests(d):
        q.put(item)
    for _ in ws:
        q.put(None)
    for w in ws:
        w.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    return time.perf_counter() - t0, sent[0]


def _metric_lines(txt: str, prefixes: tuple[str, ...]) -> tuple:
    return tuple(line for line in txt.splitlines() if line.startswith(prefixes))


def tocsin_settled(srv: ServerProcess, interval_s: float, timeout: float = 1800) -> float:
    """Until flushes and maintenance stopped changing anything for three maintenance passes."""
    t0 = time.time()
    last, since = None, time.time()
    while time.time() - t0 < timeout:
        txt = httpx.get(srv.api_url + "/metrics", timeout=30).text
        vals = _metric_lines(txt, ("tocsin_store_maintenance_total", "tocsin_flush_rows_total"))
        if vals != last:
            last, since = vals, time.time()
        elif time.time() - since >= 3 * interval_s + 2:
            return time.time() - t0
        time.sleep(1)
    raise RuntimeError("tocsin did not settle")


def _metric_sum(txt: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in txt.splitlines() if line.startswith(prefix))


def backlog_flushed(srv: ServerProcess, timeout: float = 600) -> bool:
    """Until the flushes of the backlog are done (histogram rows flushed > 0 and unchanged
    for 2 s). Returns whether maintenance had done any work by then."""
    t0 = time.time()
    last, since = -1.0, time.time()
    while time.time() - t0 < timeout:
        txt = httpx.get(srv.api_url + "/metrics", timeout=30).text
        rows = _metric_sum(txt, 'tocsin_flush_rows_total{kind="hist"}')
        if rows != last:
            last, since = rows, time.time()
        elif rows > 0 and time.time() - since >= 2:
            return _metric_sum(txt, "tocsin_store_maintenance_total") > 0
        time.sleep(0.2)
    raise RuntimeError("tocsin did not flush the backlog")


def start_tocsin(work: Path, backend: str, pg_dsn: str | None, lateness_s: int, maint_s: int) -> ServerProcess:
    cfg = {"aggregation": {"lateness": f"{lateness_s}s"},
           "storage": {"maintenance_interval": f"{maint_s}s", "wal_dir": str(work / "wal")},
           "rules": {"files": []}}
    env = {"MALLOC_MMAP_THRESHOLD_": "1073741824", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
    if backend == "postgresql":
        env.update({"TOCSIN_STORAGE__BACKEND": "postgresql", "TOCSIN_STORAGE__POSTGRESQL__DSN_ENV": "BENCH_PG",
                    "BENCH_PG": pg_dsn})
    return ServerProcess(work, cfg, env=env).start(timeout=120)


def tocsin_disk(work: Path, backend: str, pg, db: str | None) -> int:
    if backend == "duckdb":
        p = work / "tocsin.duckdb"
        return p.stat().st_size + (os.path.getsize(str(p) + ".wal") if os.path.exists(str(p) + ".wal") else 0)
    rows = pg.sql(f"SELECT pg_database_size('{db}') - pg_database_size('template1')")
    return int(rows[0][0])


# -- queries -----------------------------------------------------------------------------------------

@dataclass
class Query:
    name: str
    kind: str          # instant | range
    tocsin: str
    prom: str
    window_s: float     # start = end - window (range queries)
    step_s: float
    exact: str          # what the exact value is: quantile:<q>:<by labels> | rate:<by> | none
    q: float = 0.0
    by: tuple = ()


def queries(d: Data) -> list[Query]:
    one = f'service_name="{d.services[1]}",http_route="{d.routes[len(d.routes) // SERVICES + 1]}"'
    return [
        Query("p95 one series, 1 h (instant)", "instant",
              f"histogram_quantile(0.95, rate({METRIC}{{{one}}}[1h]))",
              f"histogram_quantile(0.95, rate({METRIC}_bucket{{{one}}}[1h]))", 0, 0, "quantile", 0.95,
              ("service_name", "http_route")),
        Query("request rate by service (instant)", "instant",
              f"sum by (service_name) (rate({METRIC}_count[5m]))",
              f"sum by (service_name) (rate({METRIC}_count[5m]))", 0, 0, "rate", 0, ("service_name",)),
        Query("p95 by service, 6 h at 60 s", "range",
              f"histogram_quantile(0.95, sum by (service_name) (rate({METRIC}[5m])))",
              f"histogram_quantile(0.95, sum by (service_name, le) (rate({METRIC}_bucket[5m])))", 6 * 3600, 60,
              "quantile", 0.95, ("service_name",)),
        Query("p95 by service and route, 6 h at 60 s", "range",
              f"histogram_quantile(0.95, sum by (service_name, http_route) (rate({METRIC}[5m])))",
              f"histogram_quantile(0.95, sum by (service_name, http_route, le) (rate({METRIC}_bucket[5m])))",
              6 * 3600, 60, "quantile", 0.95, ("service_name", "http_route")),
        Query("p99 by route, 1 h at 15 s", "range",
              f"histogram_quantile(0.99, sum by (http_route) (rate({METRIC}[5m])))",
              f"histogram_quantile(0.99, sum by (http_route, le) (rate({METRIC}_bucket[5m])))", 3600, 15,
              "quantile", 0.99, ("http_route",)),
    ]


LONG = Query("histogram_count(increase(…[6h])) over every series", "instant",
             f"histogram_count(increase({METRIC}[6h]))", f"increase({METRIC}_count[6h])", 0, 0, "none")


def run_query(c: httpx.Client, q: Query, expr: str, end_s: float) -> tuple[float, dict]:
    if q.kind == "instant":
        params = {"query": expr, "time": f"{end_s:.3f}"}
        path = "/api/v1/query"
    else:
        params = {"query": expr, "start": f"{end_s - min(q.window_s, 6 * 3600):.3f}", "end": f"{end_s:.3f}",
                  "step": f"{q.step_s:g}"}
        path = "/api/v1/query_range"
    t0 = time.perf_counter()
    r = c.get(path, params=params)
    dt = time.perf_counter() - t0
    r.raise_for_status()
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return dt, body["data"]


def _groups(d: Data, by: tuple) -> dict[tuple, list[int]]:
    out: dict[tuple, list[int]] = {}
    for s in range(len(d.routes)):
        lab = d.labels(s)
        out.setdefault(tuple(lab[k] for k in by), []).append(s)
    return out


def errors(d: Data, q: Query, data: dict, groups: dict) -> list[float]:
    """Relative error of every returned point against the exact value."""
    errs = []
    w = 3600 if q.name.startswith("p95 one series") else 300
    for item in data["result"]:
        key = tuple(item["metric"].get(k, "") for k in q.by)
        members = groups.get(key)
        if members is None:
            continue
        pts = [item["value"]] if "value" in item else item["values"]
        for t, v in pts:
            vals = d.window_values(members, float(t), w)
            if not len(vals):
                continue
            if q.exact == "quantile":
                exact = float(np.quantile(vals, q.q, method="inverted_cdf"))
            else:
                exact = len(vals) / w
            errs.append(abs(float(v) - exact) / exact)
    return errs


def measure(d: Data, srv: ServerProcess, prom: PrometheusProcess, runs: int, rss: RssSampler) -> dict:
    end = float(d.end_s)
    qs = queries(d)
    out = {q.name: {"tocsin": [], "prom": []} for q in qs}
    tc = httpx.Client(base_url=srv.api_url, timeout=300)
    pc = httpx.Client(base_url=f"http://{prom.address}", timeout=300)
    answers = {}
    rss.set("warm-up")
    for _ in range(2):   # warm-up: both servers' caches, our connections
        for q in qs:
            answers[q.name] = (run_query(tc, q, q.tocsin, end)[1], run_query(pc, q, q.prom, end)[1])
    rss.set("queries")
    for k in range(runs):
        for q in qs:
            pair = [("tocsin", tc, q.tocsin), ("prom", pc, q.prom)]
            if k % 2:
                pair.reverse()
            for who, c, expr in pair:
                out[q.name][who].append(run_query(c, q, expr, end)[0])
    res = {}
    for q in qs:
        g = _groups(d, q.by)
        et, ep = errors(d, q, answers[q.name][0], g), errors(d, q, answers[q.name][1], g)
        res[q.name] = {"tocsin_ms": 1000 * statistics.median(out[q.name]["tocsin"]),
                       "prom_ms": 1000 * statistics.median(out[q.name]["prom"]),
                       "tocsin_err": (float(np.median(et)), float(np.max(et)), float(np.quantile(et, 0.95)))
                       if et else None,
                       "prom_err": (float(np.median(ep)), float(np.max(ep)), float(np.quantile(ep, 0.95)))
                       if ep else None,
                       "points": (sum(len(i.get("values", [1])) for i in answers[q.name][0]["result"]),
                                  sum(len(i.get("values", [1])) for i in answers[q.name][1]["result"]))}
    rss.set("after queries")
    time.sleep(0.5)
    res["_rss_after"] = (rss_kb(srv.proc.pid), rss_kb(prom.proc.pid))
    rss.set("long-range query over every series")
    lt, lp = [], []
    for _ in range(3):
        lt.append(run_query(tc, LONG, LONG.tocsin, end)[0])
        lp.append(run_query(pc, LONG, LONG.prom, end)[0])
    res["_long"] = (1000 * statistics.median(lt), 1000 * statistics.median(lp))
    rss.set("idle")
    tc.close()
    pc.close()
    return res


def _err(e) -> str:
    return "—" if e is None else f"{100 * e[2]:.2f} % (max {100 * e[1]:.2f} %)"


def report(backend: str, d: Data, res: dict, extra: dict) -> list[str]:
    n_obs = len(d.dur_ns)
    lines = ["", f"## Tocsin ({backend}) vs Prometheus 2.42 — {len(d.routes)} series × "
                 f"{d.n_slots * SLOT_S / 3600:g} h, {n_obs:,} observations; medians of {extra['runs']} "
                 f"interleaved runs, ms (client side, HTTP)", "",
             "| query | Tocsin | Prometheus | ratio | Tocsin error p95 (max) | Prometheus error p95 (max) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in res.items():
        if name.startswith("_"):
            continue
        lines.append(f"| {name} | {r['tocsin_ms']:.1f} | {r['prom_ms']:.1f} | {r['tocsin_ms'] / r['prom_ms']:.2f} | "
                     f"{_err(r['tocsin_err'])} | {_err(r['prom_err'])} |")
    lt, lp = res["_long"]
    lines.append(f"| {LONG.name} (not a goal; a memory probe) | {lt:.1f} | {lp:.1f} | {lt / lp:.2f} | | |")
    ta, pa_ = res["_rss_after"]
    lines += ["", f"RSS after the queries: Tocsin {ta / 1024:.0f} MB, Prometheus {pa_ / 1024:.0f} MB "
                  f"(ratio {ta / pa_:.2f}); Tocsin steady (after maintenance, before queries) "
                  f"{extra['steady_kb'] / 1024:.0f} MB.",
              "Tocsin peak RSS per phase (MB, ratio to steady): " + "; ".join(
                  f"{k} {v / 1024:.0f} ({v / extra['steady_kb']:.2f})" for k, v in extra["peaks"].items()),
              f"Disk: Tocsin store {extra['tocsin_disk'] / 1e6:.1f} MB (once the backlog was flushed "
              f"{extra['tocsin_disk_before'] / 1e6:.1f} MB, "
              f"{'maintenance had begun' if extra['maint_started'] else 'before any maintenance work'}), "
              f"Prometheus data dir {extra['prom_disk'] / 1e6:.1f} MB "
              f"(ratio {extra['tocsin_disk'] / extra['prom_disk']:.2f}); Tocsin's ingest WAL "
              f"{extra['wal_disk'] / 1e6:.1f} MB (not counted; trimmed once flushed).",
              f"Load: Tocsin {n_obs:,} spans over OTLP/HTTP in {extra['load_s']:.0f} s "
              f"({n_obs / extra['load_s']:,.0f} spans/s), settled {extra['settle_s']:.0f} s later; "
              f"Prometheus settled after its compactions."]
    return lines


def run_backend(backend: str, d: Data, prom: PrometheusProcess, runs: int, work: Path, pg=None) -> list[str]:
    db = None
    dsn = None
    if backend == "postgresql":
        db = pg.create_database("vsprom")
        dsn = pg.dsn(db)
    tw = work / f"tocsin-{backend}"
    tw.mkdir()
    lateness = int(time.time() - d.first_ns / NS) + 3600
    maint_s = 10
    srv = start_tocsin(tw, backend, dsn, lateness, maint_s)
    rss = RssSampler(srv.proc.pid)
    try:
        rss.set("ingest of 6 h of late data")
        load_s, n = load_tocsin(d, srv)
        log(f"tocsin ({backend}): {n:,} spans sent in {load_s:.0f} s")
        # Two phases told apart by the server's own counters: the flushes that write the
        # backlog, then maintenance until nothing changes (the disk is read between them).
        rss.set("flush of the backlog")
        maint_started = backlog_flushed(srv)
        before = tocsin_disk(tw, backend, pg, db)
        rss.set("maintenance until steady")
        settle_s = tocsin_settled(srv, maint_s)
        rss.set("steady")
        time.sleep(2)
        steady = rss_kb(srv.proc.pid)
        log(f"tocsin ({backend}): settled after {settle_s:.0f} s, RSS {steady / 1024:.0f} MB")
        res = measure(d, srv, prom, runs, rss)
        disk = tocsin_disk(tw, backend, pg, db)
        wal = dir_bytes(str(tw / "wal"))
    finally:
        rss.stop()
        srv.stop()
    peaks = {k: v for k, v in rss.peaks.items() if k not in ("start", "idle", "after queries")}
    prom_disk = dir_bytes(str(work / "prom" / "data"))
    return report(backend, d, res, {"runs": runs, "steady_kb": steady, "peaks": peaks, "tocsin_disk": disk,
                                    "tocsin_disk_before": before, "prom_disk": prom_disk, "wal_disk": wal,
                                    "load_s": load_s, "settle_s": settle_s, "maint_started": maint_started})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=100)
    ap.add_argument("--hours", type=float, default=6)
    ap.add_argument("--rate", type=float, default=3.33, help="mean spans per second per series")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--backend", choices=("duckdb", "postgresql", "both"), default="both")
    ap.add_argument("--keep", default=None, help="work in this directory and keep it")
    args = ap.parse_args(argv)
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("bench.vs_prometheus: prometheus/promtool not installed (apt-get install prometheus); skipped")
        return 0
    work = Path(args.keep or tempfile.mkdtemp(prefix="tocsin-vsprom-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)
    end_s = int(time.time()) // 60 * 60 - 60
    d = generate(args.series, args.hours, args.rate, end_s)
    log(f"data: {len(d.routes)} series × {args.hours:g} h, {len(d.dur_ns):,} observations, ending {end_s}")
    backends = ("duckdb", "postgresql") if args.backend == "both" else (args.backend,)
    prom = pg = None
    lines = []
    try:
        prom = start_prometheus(d, work)
        prom_settled(prom)
        log(f"prometheus: settled, RSS {rss_kb(prom.proc.pid) / 1024:.0f} MB")
        if "postgresql" in backends:
            import pgserver

            pg = pgserver.start_cluster(durable=True)
        for b in backends:
            lines += run_backend(b, d, prom, args.runs, work, pg)
            print("\n".join(lines), flush=True)
            lines = []
    finally:
        if prom is not None:
            prom.stop()
        if pg is not None:
            pg.destroy()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
