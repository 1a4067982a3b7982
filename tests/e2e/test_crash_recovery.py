"""Durability: a server under steady load is killed with SIGKILL mid-stream and
restarted on the same files (and database). Every span the client saw
acknowledged is counted exactly once; quantiles equal what was sent. On both
store backends."""
import re
import signal
import threading
import time

import httpx
import numpy as np
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from backends import Analyst, both_backends, server_env
from serverproc import ServerProcess

SPANS_PER_REQUEST = 50
DURATIONS = np.linspace(0.010, 0.500, SPANS_PER_REQUEST)  # every request carries the same distribution


def request_body(seq: int) -> bytes:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="checkout")))
    ss = rs.scope_spans.add()
    end = time.time_ns()
    for i, d in enumerate(DURATIONS):
        ss.spans.append(Span(trace_id=seq.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="GET /",
                             kind=Span.SPAN_KIND_SERVER, start_time_unix_nano=end - int(d * 1e9),
                             end_time_unix_nano=end))
    return req.SerializeToString()


@both_backends
def test_sigkill_mid_stream_loses_and_doubles_nothing(tmp_path, backend, request):
    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": "300ms"}}
    env = server_env(backend, request, tmp_path)
    srv = ServerProcess(tmp_path, cfg, env).start()
    acked = 0
    in_flight_max = 0
    stop = threading.Event()

    def load():
        nonlocal acked, in_flight_max
        seq = 0
        with httpx.Client(base_url=srv.http_url, timeout=5) as c:
            while not stop.is_set():
                seq += 1
                try:
                    r = c.post("/v1/traces", content=request_body(seq),
                               headers={"Content-Type": "application/x-protobuf"})
                except httpx.HTTPError:
                    in_flight_max = 1  # this request may or may not have been stored
                    return
                if r.status_code == 200:
                    acked += SPANS_PER_REQUEST

    t = threading.Thread(target=load)
    t.start()
    time.sleep(2.0)  # several flushes and WAL rotations happen under load
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.proc = None
    stop.set()
    t.join(10)
    assert acked > 10 * SPANS_PER_REQUEST

    again = ServerProcess(tmp_path, cfg, env).start()
    assert again.stop() == 0, again.output()
    db = Analyst(backend, request, tmp_path)
    total = db.rows("SELECT sum(count)::BIGINT FROM latency")[0][0]
    assert acked <= total <= acked + in_flight_max * SPANS_PER_REQUEST, (acked, total)
    # Quantiles of the stored data equal those of what was sent (same distribution per request).
    rows = db.rows("SELECT sum(count)::BIGINT, max(max), min(min) FROM latency")[0]
    assert rows[1] == DURATIONS.max() and abs(rows[2] - DURATIONS.min()) < 1e-9


@both_backends
def test_torn_wal_tail_does_not_stop_the_start(tmp_path, backend, request):
    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": "1h"}}
    env = server_env(backend, request, tmp_path)
    srv = ServerProcess(tmp_path, cfg, env).start()
    with httpx.Client(base_url=srv.http_url) as c:
        for seq in range(3):
            assert c.post("/v1/traces", content=request_body(seq),
                          headers={"Content-Type": "application/x-protobuf"}).status_code == 200
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.proc = None
    wal_dir = tmp_path / ("wal" if backend == "postgresql" else "tocsin.duckdb-wal")
    newest = sorted(wal_dir.glob("*.wal"))[-1]
    with open(newest, "ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a record header cut short by the crash
    again = ServerProcess(tmp_path, cfg, env).start()
    with again.client() as c:
        metrics = c.get("/metrics").text
    assert again.stop() == 0
    assert "tocsin_wal_torn_records_total 1.0" in metrics
    # the operator sees the replay start and end, with counts and a rate
    out = again.output()
    assert re.search(r"INFO tocsin: write-ahead log replay: 1 segments, 0\.0 MiB in " + re.escape(str(wal_dir)) + "\n",
                     out), out
    assert re.search(r"INFO tocsin: write-ahead log replay: done, 3 records \(0\.0 MiB\) in [\d.]+ s, \d+ records/s; "
                     r"1 torn records skipped\n", out), out
    assert Analyst(backend, request, tmp_path).rows("SELECT sum(count)::BIGINT FROM latency")[0][0] \
        == 3 * SPANS_PER_REQUEST
