"""The README's Storage section, run as written: its Python snippet (no duckdb CLI
needed) works on a real store, and its SQL answers one row per route per slot even
when a route has several series (methods, status codes)."""
import re
import subprocess
import sys
import time

import duckdb
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from serverproc import REPO

SNIPPET = re.compile(r"```sh\n(\.venv/bin/python - data/tocsin\.duckdb <<'EOF'\n.*?\nEOF)\n```", re.S)


def _attr(k, v):
    return KeyValue(key=k, value=AnyValue(string_value=v) if isinstance(v, str) else AnyValue(int_value=v))


def _request(end: int) -> tuple[ExportTraceServiceRequest, int]:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.append(_attr("service.name", "checkout"))
    spans = rs.scope_spans.add().spans
    n = 0
    for route in ("/cart", "/pay"):
        for method, status in (("GET", 200), ("GET", 500), ("POST", 200)):
            for i in range(4):
                s = spans.add(name=f"{method} {route}", kind=Span.SPAN_KIND_SERVER,
                              start_time_unix_nano=end - (i + 1) * 10_000_000, end_time_unix_nano=end)
                s.attributes.extend([_attr("http.route", route), _attr("http.request.method", method),
                                     _attr("http.response.status_code", status)])
                n += 1
    return req, n


def test_readme_sql_gives_one_row_per_route_per_slot(server_factory, tmp_path):
    srv = server_factory({"rules": {"files": []}})
    req, sent = _request(time.time_ns())
    r = httpx.post(srv.http_url + "/v1/traces", content=req.SerializeToString(),
                   headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert r.status_code == 200
    assert srv.stop() == 0        # DuckDB: one process per file
    db = tmp_path / "tocsin.duckdb"

    snippet = SNIPPET.search((REPO / "README.md").read_text()).group(1)
    sql = re.search(r'sql\("""(.*?)"""\)', snippet, re.S).group(1)
    con = duckdb.connect(str(db), read_only=True)
    series = con.sql("SELECT count(DISTINCT labels) FROM latency WHERE labels['service_name'] = 'checkout' "
                     "AND resolution = INTERVAL 10 SECOND").fetchall()[0][0]
    rows = con.sql(sql).fetchall()
    con.close()
    assert series == 6 and len(rows) == 2, rows               # 6 series, 2 routes, one slot
    assert sorted(r[1] for r in rows) == ["/cart", "/pay"] and sum(r[2] for r in rows) == sent

    script = snippet.replace(".venv/bin/python", sys.executable).replace("data/tocsin.duckdb", str(db))
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "/cart" in out.stdout and "/pay" in out.stdout and "mean_ms" in out.stdout
