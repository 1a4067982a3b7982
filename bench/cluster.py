"""Cluster benchmarks (docs/cluster.md, docs/benchmarks.md), measured in one run:

* ingest through HAProxy (deploy/haproxy.cfg) with 1 and 2 replicas: spans/s and
  the replicas' CPU seconds per million spans (user + system of every replica
  process), wrk posting 1 000-span OTLP/HTTP requests; rounds alternate the two
  cases, medians are reported. On a 2-core machine shared by PostgreSQL,
  HAProxy, wrk and the replicas, the CPU per span and the ratio are what count;
* failover: a leader killed with SIGKILL (its socket closes: the lock frees at
  once) and frozen with SIGSTOP (only PostgreSQL's idle_session_timeout frees
  it), each repeated, the time from the signal to the new leader's takeover (its
  ``since``, PostgreSQL's clock, same machine); default cluster timings;
* visibility: spans acknowledged by one replica, polled on the others until the
  same query answers the same, default cluster.visibility;
* the load on one primary per 1 000 active series: 2 replicas ingesting into
  1 000 series; rows written per second (pg_stat_database) and WAL bytes per
  second (pg_current_wal_lsn), per 1 000 series.

    python -m bench.cluster [--seconds 6] [--rounds 3] [--kills 5] [--freezes 3]

PostgreSQL runs with its default durability settings (fsync on), as bench.postgres.
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "cluster"))

from bench.ingest import _cpu_s, _wrk, build_request  # noqa: E402


def log(m: str) -> None:
    print(m, file=sys.stderr, flush=True)


def _pg():
    import pgserver
    from collector.store.postgres import migrate

    pg = pgserver.start_cluster(durable=True)
    pg.create_database("tocsin")
    migrate.upgrade(pg.dsn("tocsin"))
    return pg


def _cluster(pg, work: Path, n: int, cluster: dict | None = None, haproxy: bool = True):
    from harness import Cluster

    cfg = {"rules": {"files": []}, "cluster": {"enabled": True, **(cluster or {})}}
    return Cluster(pg, work, n, cfg).start(haproxy=haproxy)


def _pids(c) -> list[int]:
    return [r.proc.proc.pid for r in c.replicas if r.proc is not None and r.proc.proc is not None]


# -- ingest ----------------------------------------------------------------------------------
def ingest(seconds: float, rounds: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="tocsin-bench-cluster-"))
    body = build_request(1000, seed=1).SerializeToString()
    (work / "body.bin").write_bytes(body)
    gz = gzip.compress(body)
    results: dict[int, list[dict]] = {1: [], 2: []}
    for rnd in range(rounds):
        for n in (1, 2):
            pg = _pg()
            c = None
            try:
                c = _cluster(pg, work / f"r{rnd}n{n}", n)
                url = f"{c.haproxy.http_url}/v1/traces"
                hdr = {"Content-Type": "application/x-protobuf"}
                httpx.post(url, content=gz, headers={**hdr, "Content-Encoding": "gzip"}, timeout=30)  # warm up
                cpu0 = sum(_cpu_s(p) for p in _pids(c))
                w = _wrk(url, work / "body.bin", hdr, seconds, connections=8)
                if w is None:
                    raise SystemExit("wrk is not installed (apt-get install wrk)")
                cpu = sum(_cpu_s(p) for p in _pids(c)) - cpu0
                spans = w["requests"] * 1000
                results[n].append({"spans_per_s": spans / w["elapsed"], "cpu_s_per_m": cpu / spans * 1e6,
                                   "errors": w["errors"], "p99_ms": w["p99_ms"]})
                log(f"  round {rnd + 1}, {n} replica(s): {spans / w['elapsed']:,.0f} spans/s, "
                    f"{cpu / spans * 1e6:.2f} CPU-s per million spans, {w['errors']} errors")
            finally:
                if c is not None:
                    c.stop()
                pg.destroy()
    out = {}
    for n, rs in results.items():
        out[n] = {k: statistics.median(r[k] for r in rs) for k in ("spans_per_s", "cpu_s_per_m", "p99_ms")}
        out[n]["errors"] = sum(r["errors"] for r in rs)
    return out


# -- failover and visibility -----------------------------------------------------------------
def _since(status: dict) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(status["leader"]["since"].replace("Z", "+00:00")).timestamp()


def failover(kills: int, freezes: int) -> dict:
    pg = _pg()
    c = None
    out = {"sigkill": [], "sigstop": []}
    try:
        c = _cluster(pg, Path(tempfile.mkdtemp(prefix="tocsin-bench-failover-")), 3, haproxy=False)
        for kind, times in (("sigkill", kills), ("sigstop", freezes)):
            for _ in range(times):
                leader, epoch = c.leader()
                time.sleep(1.0)
                t0 = time.time()
                if kind == "sigkill":
                    leader.kill()
                else:
                    leader.freeze()
                new, _ = c.leader(timeout=120, newer_than=epoch)
                took = _since(new.status()) - t0
                out[kind].append(took)
                log(f"  {kind}: takeover after {took:.2f} s")
                if kind == "sigkill":
                    leader.start()
                else:
                    leader.thaw()
                c.leader()
    finally:
        if c is not None:
            c.stop()
        pg.destroy()
    return out


def visibility(rounds: int) -> list[float]:
    from load import http_exporter
    from test_replica_durability import _spans

    pg = _pg()
    c = None
    delays = []
    try:
        c = _cluster(pg, Path(tempfile.mkdtemp(prefix="tocsin-bench-visibility-")), 3, haproxy=False)
        for i in range(rounds):
            sender = c.replicas[i % 3]
            service = f"vis-{i}"
            exp = http_exporter(f"http://127.0.0.1:{sender.ports['http']}")
            exp.export(_spans(service, 40))
            t0 = time.monotonic()
            exp.shutdown()
            q = f'sum(traces_span_metrics_calls_total{{service_name="{service}"}})'
            pending = {r.name: r for r in c.replicas if r is not sender}
            while pending:
                for name, r in list(pending.items()):
                    res = httpx.get(r.api_url + "/api/v1/query", params={"query": q}, timeout=10).json()
                    if res["data"]["result"] and res["data"]["result"][0]["value"][1] == "40":
                        delays.append(time.monotonic() - t0)
                        del pending[name]
                time.sleep(0.02)
            time.sleep(0.3)
    finally:
        if c is not None:
            c.stop()
        pg.destroy()
    return delays


# -- load on one primary ---------------------------------------------------------------------
def primary_load(seconds: float, series: int = 1000) -> dict:
    """2 replicas, ``series`` active series (a request carries one span of each), measured on PostgreSQL."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    def body() -> bytes:
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="shop")))
        ss = rs.scope_spans.add()
        end = time.time_ns()
        for i in range(series):
            sp = ss.spans.add(trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"),
                              name=f"GET /route/{i}", kind=Span.SPAN_KIND_SERVER,
                              start_time_unix_nano=end - 20_000_000, end_time_unix_nano=end)
            sp.attributes.append(KeyValue(key="http.route", value=AnyValue(string_value=f"/route/{i}")))
        return req.SerializeToString()

    import psycopg

    pg = _pg()
    c = None
    try:
        c = _cluster(pg, Path(tempfile.mkdtemp(prefix="tocsin-bench-primary-")), 2)
        url = f"{c.haproxy.http_url}/v1/traces"
        hdr = {"Content-Type": "application/x-protobuf"}
        with httpx.Client(timeout=30) as client:
            client.post(url, content=body(), headers=hdr).raise_for_status()   # create the series
            time.sleep(3.0)

            def stats():
                with psycopg.connect(c.dsn, autocommit=True) as con:
                    rows = con.execute("SELECT tup_inserted + tup_updated + tup_deleted FROM pg_stat_database "
                                       "WHERE datname = 'tocsin'").fetchone()[0]
                    lsn = con.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()[0]
                    xact = con.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = 'tocsin'"
                                       ).fetchone()[0]
                return int(rows), int(lsn), int(xact)

            r0, l0, x0 = stats()
            t0 = time.monotonic()
            sent = 0
            while time.monotonic() - t0 < seconds:
                client.post(url, content=body(), headers=hdr).raise_for_status()
                sent += 1
                time.sleep(0.05)
            elapsed = time.monotonic() - t0
            time.sleep(1.5)                       # the last flushes
            time.sleep(0.5)
            r1, l1, x1 = stats()
        per = 1000 / series
        return {"rows_per_s": (r1 - r0) / elapsed * per, "wal_bytes_per_s": (l1 - l0) / elapsed * per,
                "commits_per_s": (x1 - x0) / elapsed, "requests": sent, "spans_per_s": sent * series / elapsed}
    finally:
        if c is not None:
            c.stop()
        pg.destroy()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--freezes", type=int, default=3)
    ap.add_argument("--visibility-rounds", type=int, default=10)
    args = ap.parse_args(argv)

    log("ingest through HAProxy, 1 and 2 replicas ...")
    ing = ingest(args.seconds, args.rounds)
    log("failover ...")
    fo = failover(args.kills, args.freezes)
    log("visibility ...")
    vis = visibility(args.visibility_rounds)
    log("load on one primary ...")
    load = primary_load(max(args.seconds, 10.0))

    print("\nCluster (python -m bench.cluster "
          f"--seconds {args.seconds:g} --rounds {args.rounds} --kills {args.kills} --freezes {args.freezes})")
    print("| replicas behind HAProxy | spans/s (median) | replicas' CPU-s per million spans | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for n, r in ing.items():
        print(f"| {n} | {r['spans_per_s']:,.0f} | {r['cpu_s_per_m']:.2f} | {r['p99_ms']:.0f} | {r['errors']} |")
    print(f"2 replicas / 1 replica: spans/s x{ing[2]['spans_per_s'] / ing[1]['spans_per_s']:.2f}, "
          f"CPU per span x{ing[2]['cpu_s_per_m'] / ing[1]['cpu_s_per_m']:.2f}")
    for kind, ts in fo.items():
        if ts:
            print(f"failover after {kind}: median {statistics.median(ts):.2f} s, max {max(ts):.2f} s "
                  f"({len(ts)} runs; cluster.failover_timeout 15 s)")
    vis.sort()
    print(f"visibility on the other replicas: median {statistics.median(vis):.2f} s, max {vis[-1]:.2f} s "
          f"({len(vis)} reads; cluster.visibility 2 s)")
    print(f"one primary, per 1 000 active series (2 replicas, {load['spans_per_s']:,.0f} spans/s): "
          f"{load['rows_per_s']:,.0f} rows/s, {load['wal_bytes_per_s'] / 1024:,.0f} KiB/s of WAL, "
          f"{load['commits_per_s']:.1f} commits/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
