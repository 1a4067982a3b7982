"""PostgreSQL backend against DuckDB, measured in one run on the same data.

    python -m bench.postgres [--hours 24] [--runs 5] [--ingest-seconds 8] [--skip-ingest]

* query: bench.query's cases through the real Engine over LiveSource over each
  store, both filled with the same 1 000 series (bench.datagen) and maintained
  as the service keeps them; medians, and the PostgreSQL / DuckDB ratio (target ≤ 2);
* size: bytes on disk per series per 10 s slot, before maintenance (10 s rows
  only: DuckDB file; PostgreSQL heap + TOAST + indexes of the 10 s partitions);
* write path: rows/s of one flush-sized batch into new slots, merged into stored
  slots, and two writers merging into the same slots at once; plain COPY as a
  baseline; bytes per row of the bucket encoding against int4[]/int8[] arrays;
* ingest: bench.ingest's server cases (OTLP/HTTP protobuf and gRPC, WAL on) with
  each backend, server pinned to one core; spans/s and the ratio (target ≥ 0.9).

A PostgreSQL 15 cluster is started for the run (tests/pgserver.py: initdb +
pg_ctl in a temporary directory; as the postgres user when run as root) with
its default durability settings (fsync on).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench import datagen, query  # noqa: E402
from collector.aggregate.aggregator import Aggregator  # noqa: E402
from collector.model import NS, SeriesCatalog  # noqa: E402
from collector.query.engine import Engine  # noqa: E402
from collector.query.source import LiveSource  # noqa: E402
from collector.store.base import WriteBatch  # noqa: E402
from collector.store.duckdb_store import DEFAULT_RETENTION, DuckDBStore  # noqa: E402

END_S = query.END_S


def log(m: str) -> None:
    print(m, file=sys.stderr, flush=True)


def start_pg():
    import pgserver

    return pgserver.start_cluster(durable=True)   # a benchmark measures the real thing: fsync on


def engine_over(store) -> Engine:
    catalog = SeriesCatalog()
    for s in store.load_series():
        catalog.add(s)
    eng = Engine(LiveSource(store, Aggregator(catalog, clock=lambda: END_S * NS)), clock=lambda: float(END_S))
    eng.index.all()
    return eng


def measure_queries(open_store, hours: float, runs: int) -> dict[str, tuple[float, float]]:
    out = {}
    for c in query.cases(hours):
        cold = []
        for _ in range(runs):
            store = open_store()
            eng = engine_over(store)
            t0 = time.perf_counter()
            c.run(eng)
            cold.append(time.perf_counter() - t0)
            store.close()
        store = open_store()
        eng = engine_over(store)
        c.run(eng)
        warm = []
        for _ in range(runs):
            t0 = time.perf_counter()
            c.run(eng)
            warm.append(time.perf_counter() - t0)
        store.close()
        out[c.name] = (1000 * statistics.median(cold), 1000 * statistics.median(warm))
    return out


def pg_hist_bytes(dsn: str, res: int) -> int:
    import psycopg

    with psycopg.connect(dsn) as con:
        return int(con.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i JOIN pg_class c "
            "ON c.oid = i.inhrelid JOIN partitions p ON p.name = c.relname "
            "WHERE i.inhparent = 'hist'::regclass AND p.res = %s", [res]).fetchone()[0])


def stores_and_queries(d: str, hours: float, runs: int) -> list[str]:
    from collector.store.postgres.store import PostgresStore

    lines = []
    p = datagen.make_series()
    seconds = int(hours * 3600)
    n_rows = len(p.sids) * (seconds // 10)
    duck_path = os.path.join(d, "b.duckdb")
    duck = DuckDBStore(duck_path)
    t0 = time.perf_counter()
    datagen.fill(duck, p, END_S * NS, seconds)
    duck.checkpoint()
    t_duck = time.perf_counter() - t0
    duck_bytes = os.path.getsize(duck_path)
    duck.close()
    pg = start_pg()
    try:
        pg.create_database("bench")
        dsn = pg.dsn("bench")
        store = PostgresStore(dsn)
        t0 = time.perf_counter()
        datagen.fill(store, p, END_S * NS, seconds)
        t_pg = time.perf_counter() - t0
        pg.sql("VACUUM ANALYZE", "bench")
        pg_bytes = pg_hist_bytes(dsn, 10)
        store.close()
        log(f"filled {n_rows:,} rows: DuckDB {t_duck:.0f} s, PostgreSQL {t_pg:.0f} s")
        lines += ["", f"Bytes on disk per series per 10 s slot ({len(p.sids)} series x {seconds // 10} slots, "
                      f"{n_rows:,} rows, before maintenance):",
                  f"  DuckDB      {duck_bytes / n_rows:8.1f}  (whole file)",
                  f"  PostgreSQL  {pg_bytes / n_rows:8.1f}  (10 s partitions: heap, TOAST, primary key index)",
                  f"  fill rate: DuckDB {n_rows / t_duck:,.0f} rows/s, PostgreSQL {n_rows / t_pg:,.0f} rows/s"]
        # maintained, as the service keeps them
        duck = DuckDBStore(duck_path, DEFAULT_RETENTION)
        t0 = time.perf_counter()
        duck.maintain(END_S * NS)
        duck.close()
        t_dm = time.perf_counter() - t0
        store = PostgresStore(dsn)
        t0 = time.perf_counter()
        store.maintain(END_S * NS)
        t_pm = time.perf_counter() - t0
        store.close()
        pg.sql("VACUUM ANALYZE", "bench")
        log(f"maintained: DuckDB {t_dm:.0f} s, PostgreSQL {t_pm:.0f} s")
        dq = measure_queries(lambda: DuckDBStore(duck_path, DEFAULT_RETENTION), hours, runs)
        pq = measure_queries(lambda: PostgresStore(dsn), hours, runs)
        lines += ["", f"Query cases (ms, medians of {runs}; cold = new store and engine per run):",
                  f"  {'case':22} {'DuckDB cold':>11} {'warm':>8} {'PG cold':>9} {'warm':>8} {'ratio cold':>10} "
                  f"{'warm':>6}"]
        for name in dq:
            (dc, dw), (pc, pw) = dq[name], pq[name]
            lines.append(f"  {name:22} {dc:>11.1f} {dw:>8.1f} {pc:>9.1f} {pw:>8.1f} {pc / dc:>10.2f} {pw / dw:>6.2f}")
        lines += ["", write_path(pg, p)]
    finally:
        pg.destroy()
    return lines


def write_path(pg, p) -> str:
    """The merge-on-write choice in figures (docs/decisions.md)."""
    import psycopg

    from collector.store.postgres import codec
    from collector.store.postgres.store import PostgresStore

    pg.create_database("writes")
    dsn = pg.dsn("writes")
    store = PostgresStore(dsn)
    store.write(WriteBatch(series=p.series))
    batch = datagen.slots_rows(p, END_S * NS, 2)                  # a flush: 2 slots of 1 000 series
    lines = [f"Write path, one flush of {len(batch):,} rows (medians of 5):"]

    def timed(fn, n=5):
        ts = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    k = [0]

    def new_slots():
        k[0] += 1
        store.write(WriteBatch(hist=datagen.slots_rows(p, (END_S + 20 * k[0]) * NS, 2)))
    lines.append(f"  insert into new slots          {len(batch) / timed(new_slots):>10,.0f} rows/s")
    store.write(WriteBatch(hist=batch))
    lines.append(f"  merge into stored slots        {len(batch) / timed(lambda: store.write(WriteBatch(hist=batch))):>10,.0f} rows/s")

    def plain_copy():
        with psycopg.connect(dsn) as con:
            with con.cursor().copy("COPY hist (series_id, ts, res, count, sum, min, max, p50, p90, p95, p99, "
                                   "bounds, buckets) FROM STDIN (FORMAT BINARY)") as cp:
                k[0] += 1
                cp.write(codec.hist_copy(datagen.slots_rows(p, (END_S + 20 * k[0]) * NS, 2)))
    lines.append(f"  plain COPY, append only        {len(batch) / timed(plain_copy):>10,.0f} rows/s  (baseline: "
                 "no merge, reads would merge)")
    other = PostgresStore(dsn, writer="b")

    def two_writers():
        ts = [threading.Thread(target=s.write, args=(WriteBatch(hist=batch),)) for s in (store, other)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    lines.append(f"  two writers, same slots        {2 * len(batch) / timed(two_writers):>10,.0f} rows/s  "
                 "(both merge into the same rows under row locks)")
    with psycopg.connect(dsn) as con:
        con.execute("CREATE TABLE arrays AS SELECT series_id, ts, res, count, sum, min, max, p50, p90, p95, p99, "
                    "bounds, ARRAY(SELECT get_byte(buckets, i * 6) + 256 * get_byte(buckets, i * 6 + 1) "
                    "FROM generate_series(0, length(buckets) / 6 - 1) i)::int4[] AS idx, "
                    "ARRAY(SELECT 1::int8 FROM generate_series(0, length(buckets) / 6 - 1) i)::int8[] AS cnt "
                    "FROM hist LIMIT 20000")
        b_bytea, b_arr = con.execute(
            "SELECT avg(pg_column_size(h.buckets)), (SELECT avg(pg_column_size(a.idx) + pg_column_size(a.cnt)) "
            "FROM arrays a) FROM (SELECT buckets FROM hist LIMIT 20000) h").fetchone()
    lines.append(f"  buckets per row: bytea (u16 index, u32 count) {float(b_bytea):.0f} B, int4[] + int8[] "
                 f"{float(b_arr):.0f} B")
    store.close()
    other.close()
    return "\n".join(lines)


def ingest_ratio(seconds: float, rounds: int = 3) -> list[str]:
    """bench.ingest's pinned server cases with each backend, WAL on; the backends
    alternate ``rounds`` times (this machine is shared and noisy) and medians are
    compared."""
    import gzip

    from bench import ingest

    body = ingest.build_request(1000).SerializeToString()
    gz = gzip.compress(body, 6)
    results: dict[tuple[str, str], list[float]] = {}
    pg = start_pg()
    try:
        for k in range(rounds):
            db = pg.create_database(f"ingest{k}")
            for backend in ("duckdb", "postgresql"):
                with tempfile.TemporaryDirectory() as d:
                    env = {}
                    if backend == "postgresql":
                        env = {"TOCSIN_STORAGE__BACKEND": "postgresql",
                               "TOCSIN_STORAGE__POSTGRESQL__DSN_ENV": "BENCH_PG", "BENCH_PG": pg.dsn(db),
                               "TOCSIN_STORAGE__WAL_DIR": os.path.join(d, "wal")}
                    for r in ingest._server_cases(Path(d), "on", body, gz, seconds, 8, 1000, extra_env=env):
                        results.setdefault((backend, r["case"]), []).append(r["spans_per_s"])
            log(f"ingest round {k + 1}/{rounds} done")
    finally:
        pg.destroy()
    lines = ["", f"Ingest, WAL on (spans/s, medians of {rounds} alternating rounds "
                 f"of {seconds:g} s):",
             f"  {'case':36} {'DuckDB':>10} {'PostgreSQL':>11} {'ratio':>6}"]
    for (backend, case), v in results.items():
        if backend == "duckdb":
            dv, pv = statistics.median(v), statistics.median(results[("postgresql", case)])
            lines.append(f"  {case:36} {dv:>10,.0f} {pv:>11,.0f} {pv / dv:>6.2f}")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=24)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--ingest-seconds", type=float, default=8)
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--skip-queries", action="store_true")
    args = ap.parse_args(argv)
    d = tempfile.mkdtemp(prefix="tocsin-bench-pg-")
    os.chmod(d, 0o755)
    lines = []
    try:
        if not args.skip_ingest:
            lines += ingest_ratio(args.ingest_seconds)
        if not args.skip_queries:
            lines += stores_and_queries(d, args.hours, args.runs)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
