"""Bearer tokens on the real server: ingest (HTTP and gRPC), read and admin API."""
import grpc
import httpx
import pytest

from serverproc import ServerProcess
from spans import exporter, send_spans

TOKENS = {"TOK_INGEST": "ingest-secret-1", "TOK_READ": "read-secret-2", "TOK_ADMIN": "admin-secret-3"}
CFG = {"rules": {"files": []},
       "auth": {"ingest_tokens": [{"token_env": "TOK_INGEST", "tenant": "team-a"}],
                "read_tokens": [{"token_env": "TOK_READ"}],
                "admin_tokens": [{"token_env": "TOK_ADMIN"}]}}


def _bearer(t):
    return {"Authorization": f"Bearer {t}"}


def test_tokens_guard_ingest_queries_and_admin(server_factory):
    srv = server_factory(CFG, env=TOKENS)
    h = {"Content-Type": "application/x-protobuf"}
    assert httpx.post(f"{srv.http_url}/v1/traces", content=b"", headers=h).status_code == 401
    assert httpx.post(f"{srv.http_url}/v1/traces", content=b"", headers={**h, **_bearer("wrong")}).status_code == 401
    assert httpx.post(f"{srv.http_url}/v1/traces", content=b"",
                      headers={**h, **_bearer(TOKENS["TOK_INGEST"])}).status_code == 200

    # gRPC: metadata authorization
    channel = grpc.insecure_channel(srv.grpc)
    export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                                 request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        export(b"", timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert export(b"", timeout=5, metadata=[("authorization", f"Bearer {TOKENS['TOK_INGEST']}")]) == b""
    # the SDK exporter with headers works end to end
    send_spans(exporter("http", srv.http_url, headers=_bearer(TOKENS["TOK_INGEST"])), "checkout", [0.1] * 5)

    api = srv.api_url
    assert httpx.get(f"{api}/-/healthy").status_code == 200  # health stays open
    assert httpx.get(f"{api}/api/v1/query", params={"query": "1+1"}).status_code == 401
    r = httpx.get(f"{api}/api/v1/query", params={"query": "1+1"}, headers=_bearer(TOKENS["TOK_READ"]))
    assert r.status_code == 200 and r.json()["data"]["result"][1] == "2"
    assert httpx.get(f"{api}/metrics", headers=_bearer(TOKENS["TOK_READ"])).status_code == 200
    silence = {"matchers": [{"name": "alertname", "value": "X", "isRegex": False}], "startsAt": "2026-01-01T00:00:00Z",
               "endsAt": "2099-01-01T00:00:00Z", "createdBy": "t", "comment": "c"}
    assert httpx.post(f"{api}/api/v1/silences", json=silence, headers=_bearer(TOKENS["TOK_READ"])).status_code == 401
    r = httpx.post(f"{api}/api/v1/silences", json=silence, headers=_bearer(TOKENS["TOK_ADMIN"]))
    assert r.status_code == 200, r.text
    assert httpx.post(f"{api}/-/reload", headers=_bearer(TOKENS["TOK_READ"])).status_code == 401
    assert httpx.post(f"{api}/-/reload", headers=_bearer(TOKENS["TOK_ADMIN"])).status_code == 200
    assert "secret" not in srv.output()  # tokens never logged


def test_exposed_without_tokens_is_refused(tmp_path):
    srv = ServerProcess(tmp_path, {"rules": {"files": []}}, env={"TOCSIN_API__LISTEN": "0.0.0.0:0"})
    with pytest.raises(RuntimeError) as e:
        srv.start(timeout=15)
    assert "api.listen is 0.0.0.0:0, reachable from other machines, but auth.read_tokens is empty" in str(e.value)


def test_exposed_allowed_explicitly(server_factory):
    srv = server_factory({"rules": {"files": []}, "auth": {"allow_unauthenticated": True}},
                         env={"TOCSIN_API__LISTEN": "0.0.0.0:0"})
    port = srv.api.rsplit(":", 1)[1]
    assert httpx.get(f"http://127.0.0.1:{port}/-/ready").status_code == 200
