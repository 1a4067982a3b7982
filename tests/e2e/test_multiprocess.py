"""receivers.processes: 2 — a worker process binds the OTLP ports too (SO_REUSEPORT)
and ships what it aggregates to the main process. Spans sent over many
connections are counted exactly; a query right after sending sees all of them;
after a SIGKILL of the whole process group every acknowledged span is counted
exactly once."""
import os
import re
import signal
import threading
import time

import duckdb
import httpx

from serverproc import ServerProcess
from spans import exporter, send_spans
from test_crash_recovery import DURATIONS, SPANS_PER_REQUEST, request_body

PROTO = {"Content-Type": "application/x-protobuf"}


def _received_by_main(srv) -> float:
    with srv.client() as c:
        text = c.get("/metrics").text
    m = re.search(r'^tocsin_items_accepted_total\{signal="traces"\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_two_processes_count_exactly_and_read_your_writes(tmp_path):
    cfg = {"rules": {"files": []}, "receivers": {"processes": 2}, "aggregation": {"flush_interval": "1h"}}
    srv = ServerProcess(tmp_path, cfg).start()
    try:
        acked = 0
        for seq in range(40):   # a new connection per request: the kernel spreads them over both processes
            with httpx.Client(base_url=srv.http_url, timeout=10) as c:
                r = c.post("/v1/traces", content=request_body(seq), headers=PROTO)
                assert r.status_code == 200, r.text
                acked += SPANS_PER_REQUEST
        for _ in range(6):      # the OTel SDK gRPC exporter, a new channel each time
            send_spans(exporter("grpc", f"http://{srv.grpc}"), "search", [0.02] * 25, route="/search")
            acked += 25
        with srv.client() as c:   # read your writes, with nothing flushed yet
            r = c.get("/api/v1/query", params={"query": "sum(traces_span_metrics_calls_total)"}).json()
            assert r["status"] == "success", r
            assert float(r["data"]["result"][0]["value"][1]) == acked
            r = c.get("/api/v1/query", params={"query": "sum by (service_name) (traces_span_metrics_calls_total)"})
            by_svc = {x["metric"]["service_name"]: float(x["value"][1]) for x in r.json()["data"]["result"]}
            assert by_svc == {"checkout": 40 * SPANS_PER_REQUEST, "search": 150}
            # exemplars from both processes, merged: the slowest request of each octave, ids as sent
            r = c.get("/api/v1/query_exemplars", params={"query": 'traces_span_metrics_duration_seconds'
                                                                  '{service_name="checkout"}',
                                                         "start": time.time() - 300, "end": time.time() + 60})
            ex = [e for s in r.json()["data"] for e in s["exemplars"]]
            assert max(float(e["value"]) for e in ex) == DURATIONS.max()
            assert {e["labels"]["trace_id"] for e in ex} <= {format(seq, "032x") for seq in range(40)}
        assert 0 < _received_by_main(srv) < acked, "both processes should have received requests"
    finally:
        assert srv.stop() == 0, srv.output()
    con = duckdb.connect(str(tmp_path / "tocsin.duckdb"), read_only=True)
    assert con.sql("SELECT sum(count)::BIGINT FROM latency").fetchall()[0][0] == acked
    markers = dict(con.sql("SELECT key, value FROM meta WHERE key LIKE 'wal_segment%'").fetchall())
    assert "wal_segment:worker-1" in markers, markers
    con.close()
    # the worker's WAL keeps only its current (empty or newer) segment: the rest is in the store
    left = sorted((tmp_path / "tocsin.duckdb-wal" / "worker-1").glob("*.wal"))
    assert all(int(p.stem) > int(markers["wal_segment:worker-1"]) for p in left), (left, markers)


def test_sigkill_of_the_process_group_loses_and_doubles_nothing(tmp_path):
    cfg = {"rules": {"files": []}, "receivers": {"processes": 2}, "aggregation": {"flush_interval": "300ms"}}
    srv = ServerProcess(tmp_path, cfg, new_session=True).start()
    acked = [0] * 4
    uncertain = [0] * 4
    stop = threading.Event()

    def load(k: int):
        seq = k * 1_000_000
        while not stop.is_set():
            seq += 1
            try:   # a new connection per request, so both processes get traffic
                with httpx.Client(base_url=srv.http_url, timeout=5) as c:
                    r = c.post("/v1/traces", content=request_body(seq), headers=PROTO)
            except httpx.HTTPError:
                uncertain[k] = 1   # this request may or may not have been stored
                return
            if r.status_code == 200:
                acked[k] += SPANS_PER_REQUEST

    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(3.0)   # flushes, ships, WAL rotations and drops under load
    os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    srv.proc = None
    stop.set()
    for t in threads:
        t.join(10)
    total_acked = sum(acked)
    assert total_acked > 20 * SPANS_PER_REQUEST

    again = ServerProcess(tmp_path, cfg).start()
    assert again.stop() == 0, again.output()
    con = duckdb.connect(str(tmp_path / "tocsin.duckdb"), read_only=True)
    total = con.sql("SELECT sum(count)::BIGINT FROM latency").fetchall()[0][0]
    assert total_acked <= total <= total_acked + sum(uncertain) * SPANS_PER_REQUEST, (total_acked, total)
    rows = con.sql("SELECT max(max), min(min) FROM latency").fetchall()[0]
    assert rows[0] == DURATIONS.max() and abs(rows[1] - DURATIONS.min()) < 1e-9
