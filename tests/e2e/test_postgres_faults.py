"""Faults of the PostgreSQL backend, with a real PostgreSQL stopped and started by
the test (a cluster of its own, so other tests on this worker are untouched):

* unreachable at start: one line naming host:port, exit non-zero; ``--wait`` retries;
* gone under load: ingest keeps acknowledging into the write-ahead log up to
  ``storage.wal_max_size``, then 503 + Retry-After / UNAVAILABLE + RetryInfo;
  ``/-/ready`` says why; when it returns the backlog is written, every
  acknowledged span exactly once;
* a database at a newer schema: refused at start with a clear message.
"""
import threading
import time

import grpc
import httpx
import psycopg
import pytest
from google.rpc import error_details_pb2, status_pb2

from backends import PG_DSN_ENV
from serverproc import ServerProcess
from test_crash_recovery import SPANS_PER_REQUEST, request_body

TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _env(cluster, tmp_path, **more):
    env = {"TOCSIN_STORAGE__BACKEND": "postgresql", "TOCSIN_STORAGE__POSTGRESQL__DSN_ENV": PG_DSN_ENV,
           PG_DSN_ENV: cluster.dsn("tocsin"), "TOCSIN_STORAGE__WAL_DIR": str(tmp_path / "wal")}
    env.update(more)
    return env


def _stored_spans(cluster) -> int:
    with psycopg.connect(cluster.dsn("tocsin")) as con:
        return int(con.execute("SELECT coalesce(sum(count), 0) FROM latency").fetchone()[0])


def _wait(cond, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_unreachable_at_start_is_one_line_and_wait_retries(own_pg, tmp_path):
    own_pg.stop()
    cfg = {"rules": {"files": []}}
    srv = ServerProcess(tmp_path, cfg, _env(own_pg, tmp_path, TOCSIN_STORAGE__POSTGRESQL__CONNECT_TIMEOUT="2s"))
    with pytest.raises(RuntimeError, match="did not start"):
        srv.start(timeout=60)
    assert srv.proc.wait(10) != 0
    out = srv.output().strip().splitlines()
    assert out == [f"tocsin: cannot connect to PostgreSQL at 127.0.0.1:{own_pg.port}/tocsin: Connection refused. "
                   "Check that it is running and reachable and that storage.postgresql.dsn_env/dsn_file point at "
                   "it; or start with --wait to retry until it is"], out

    waiting = ServerProcess(tmp_path, cfg, _env(own_pg, tmp_path), args=("--wait", "2m"))

    def start_once_it_retries():   # not on a timer: a loaded machine may start the server late
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "retrying" not in "".join(waiting.lines):
            time.sleep(0.1)
        own_pg.start()

    starter = threading.Thread(target=start_once_it_retries)
    starter.start()
    try:
        waiting.start(timeout=120)
        assert "is not reachable" in waiting.output() and "retrying" in waiting.output()
        with httpx.Client(base_url=waiting.api_url) as c:
            assert c.get("/-/ready").status_code == 200
    finally:
        starter.join()
        waiting.stop()


@pytest.mark.timeout(240)
def test_postgres_stopped_under_load_holds_then_refuses_then_catches_up_exactly_once(own_pg, tmp_path):
    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": "300ms"},
           "storage": {"wal_max_size": "1MiB"}, "limits": {"retry_after": "2s"}}
    srv = ServerProcess(tmp_path, cfg, _env(own_pg, tmp_path, TOCSIN_STORAGE__POSTGRESQL__CONNECT_TIMEOUT="1s"))
    srv.start(timeout=60)
    acked, refused, errors = [0], [], []
    stop = threading.Event()

    def load():
        seq = 0
        with httpx.Client(base_url=srv.http_url, timeout=30) as c:
            while not stop.is_set():
                seq += 1
                r = c.post("/v1/traces", content=request_body(seq), headers={"Content-Type": "application/x-protobuf"})
                if r.status_code == 200:
                    acked[0] += SPANS_PER_REQUEST
                elif r.status_code == 503:
                    refused.append(r.headers.get("retry-after"))
                    stop.wait(0.05)
                else:
                    errors.append(r.status_code)
                stop.wait(0.002)

    t = threading.Thread(target=load)
    t.start()
    try:
        _wait(lambda: _stored_spans(own_pg) > 0, 30, "the first flush")
        own_pg.stop()                                   # PostgreSQL goes away under load
        before = acked[0]
        _wait(lambda: acked[0] > before + 20 * SPANS_PER_REQUEST, 30, "acknowledgements while it is down")
        with httpx.Client(base_url=srv.api_url) as c:
            ready = _wait(lambda: (r := c.get("/-/ready")).status_code == 503 and r, 30, "not ready")
            assert "the store has not accepted writes" in ready.text and f"127.0.0.1:{own_pg.port}" in ready.text
            _wait(lambda: refused, 90, "503 once the WAL is at its bound")
            assert refused[0] == "2"
            assert "write-ahead log is full" in c.get("/-/ready").text
            metrics = c.get("/metrics").text
        assert 'tocsin_receiver_refused_requests_total{reason="wal_full",signal="traces"}' in metrics
        failures = [ln for ln in metrics.splitlines() if ln.startswith("tocsin_flush_failures_total")]
        assert failures and float(failures[0].split()[1]) > 0
        # over gRPC the same refusal is UNAVAILABLE with a RetryInfo
        with grpc.insecure_channel(srv.grpc) as ch:
            export = ch.unary_unary(TRACES, request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as e:
                export(request_body(0), timeout=10)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        details = dict(e.value.trailing_metadata())["grpc-status-details-bin"]
        info = error_details_pb2.RetryInfo()
        assert status_pb2.Status.FromString(details).details[0].Unpack(info) and info.retry_delay.seconds == 2

        own_pg.start()                                  # back: the backlog goes in, ingest resumes
        with httpx.Client(base_url=srv.api_url) as c:
            _wait(lambda: c.get("/-/ready").status_code == 200, 60, "ready again")
        resumed = acked[0]
        _wait(lambda: acked[0] > resumed + 10 * SPANS_PER_REQUEST, 30, "acknowledgements after the return")
    finally:
        stop.set()
        t.join(30)
    assert errors == []
    assert srv.stop() == 0, srv.output()
    assert "Traceback" not in srv.output()
    assert _stored_spans(own_pg) == acked[0]          # every acknowledged span, exactly once


def test_newer_schema_is_refused_at_start(own_pg, tmp_path):
    own_pg.sql("UPDATE alembic_version SET version_num = '9999'", "tocsin")
    own_pg.sql("UPDATE meta SET value = '9999' WHERE key = 'schema_oldest_compatible'", "tocsin")
    srv = ServerProcess(tmp_path, {"rules": {"files": []}}, _env(own_pg, tmp_path))
    with pytest.raises(RuntimeError):
        srv.start(timeout=60)
    assert srv.proc.wait(10) != 0
    out = srv.output()
    assert "schema revision 9999, newer than this tocsin understands" in out and "Traceback" not in out
