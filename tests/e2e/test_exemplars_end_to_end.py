"""From a page to the slow request, end to end: spans sent with the real
OpenTelemetry SDK (real trace ids) reach the real server; a latency rule fires;
the local Slack-like, PagerDuty-like and webhook servers receive links built from
``notify.trace_url`` with the trace ids of the slowest spans. Grafana's side:
``/api/v1/query_exemplars`` answers for the histogram and for its classic
``_bucket`` view with those trace ids, from memory and after a restart from the
store (both backends)."""
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from backends import both_backends
from spans import exporter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notify"))
from notify_fakes import FakeHTTP, FakeSlack  # noqa: E402

M = "traces_span_metrics_duration_seconds"
TRACE_URL = "https://jaeger.example/trace/{{ .TraceID }}?span={{ .SpanID }}"


def send(endpoint: str, durations_s, service: str = "checkout", route: str = "/api/checkout") -> list[tuple]:
    """SERVER spans through the SDK; returns (duration, trace id hex, span id hex) of each."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter("http", endpoint), schedule_delay_millis=50))
    tracer = provider.get_tracer("tocsin-tests")
    out = []
    end = time.time_ns()
    for d in durations_s:
        span = tracer.start_span(f"POST {route}", kind=SpanKind.SERVER, start_time=end - int(round(d * 1e9)),
                                 attributes={"http.request.method": "POST", "http.route": route,
                                             "http.response.status_code": 200})
        span.end(end_time=end)
        ctx = span.get_span_context()
        out.append((d, format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")))
    provider.force_flush()
    provider.shutdown()
    return out


def exemplars(srv, query: str, method: str = "GET") -> list[dict]:
    params = {"query": query, "start": time.time() - 600, "end": time.time() + 60}
    with srv.client() as c:
        r = c.get("/api/v1/query_exemplars", params=params) if method == "GET" else \
            c.post("/api/v1/query_exemplars", data=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success"
    return body["data"]


def _traces(data: list[dict]) -> dict[str, tuple[dict, float]]:
    return {e["labels"]["trace_id"]: (s["seriesLabels"], float(e["value"])) for s in data for e in s["exemplars"]}


@both_backends
@pytest.mark.timeout(180)
def test_query_exemplars_for_the_histogram_and_its_classic_buckets(server_factory):
    srv = server_factory({"rules": {"files": []}, "aggregation": {"flush_interval": "1s"}})
    rng = np.random.default_rng(5)
    # slow ones in three octaves ([1.05 s, 2.1 s), [2.1 s, 4.2 s), [8.4 s, 16.8 s)): each is its octave's slowest
    sent = send(srv.http_url, list(rng.lognormal(np.log(0.05), 0.3, 60)) + [1.3, 3.7, 9.0])
    slowest = max(sent)
    deadline = time.time() + 30
    while time.time() < deadline:   # read your writes: visible once acknowledged, flushed or not
        got = _traces(exemplars(srv, f'{M}{{service_name="checkout"}}'))
        if slowest[1] in got:
            break
        time.sleep(0.2)
    labels, value = got[slowest[1]]
    assert labels["__name__"] == M and labels["service_name"] == "checkout" and "le" not in labels
    assert value == pytest.approx(9.0)
    assert {t for _, t, _ in sent} >= set(got) and {s[1] for s in sent if s[0] > 1} <= set(got)
    # every octave that has requests has its slowest: the p95-p99 region (1.3 s, 2.2 s) included
    assert len(got) >= 4

    # Grafana's exemplar query for a classic panel: the expression's selectors, le of each
    data = exemplars(srv, f"histogram_quantile(0.95, sum by (le) (rate({M}_bucket[5m])))", method="POST")
    by_trace = _traces(data)
    assert by_trace[slowest[1]][0]["le"] == "10.0" and by_trace[slowest[1]][0]["__name__"] == M + "_bucket"
    trace_37 = next(t for d, t, _ in sent if d == 3.7)
    assert by_trace[trace_37][0]["le"] == "5.0"
    trace_13 = next(t for d, t, _ in sent if d == 1.3)
    assert by_trace[trace_13][0]["le"] == "1.4"
    for labels, v in by_trace.values():   # each under the smallest bound at or above its value
        assert v <= float(labels["le"])

    # the classic view answers the query Grafana's panel runs
    with srv.client() as c:
        r = c.get("/api/v1/query", params={"query": f"sum by (le) (increase({M}_bucket[5m]))"}).json()
    counts = {s["metric"]["le"]: float(s["value"][1]) for s in r["data"]["result"]}
    assert counts["+Inf"] == len(sent) and counts["1.4"] == len(sent) - 2 and counts["15.0"] == len(sent)

    # after a restart, from the store
    srv.stop()
    srv2 = server_factory({"rules": {"files": []}})
    got2 = _traces(exemplars(srv2, f'{M}{{service_name="checkout"}}'))
    assert got2 == got
    # no exemplars for a selector that names nothing, a bad query is a 400
    assert exemplars(srv2, "nothing_here") == []
    with srv2.client() as c:
        r = c.get("/api/v1/query_exemplars", params={"query": "sum("})
    assert r.status_code == 400 and r.json()["errorType"] == "bad_data"


RULES = """
groups:
  - name: latency
    interval: 2s
    rules:
      - alert: CheckoutSlow
        latency:
          match: {service_name: checkout}
          by: [service_name]
          window: 1m
          quantile: 0.95
          above: 500ms
          min_count: 1
        for: 0s
        annotations:
          summary: "checkout p95 is {{ $value | humanizeDuration }}"
"""


@pytest.mark.timeout(180)
def test_a_latency_page_links_to_the_slowest_traces(server_factory, tmp_path):
    (tmp_path / "rules.yaml").write_text(RULES)
    slack = FakeSlack()
    pd = FakeHTTP(lambda req: (202, {}, {"status": "success", "dedup_key": req.json().get("dedup_key")}))
    hook = FakeHTTP(lambda req: (200, {}, "ok"))
    cfg = {
        "rules": {"files": [str(tmp_path / "rules.yaml")]},
        "notify": {
            "trace_url": TRACE_URL,
            "receivers": [{"name": "oncall",
                           "slack": {"webhook_url_env": "E2E_SLACK_WEBHOOK", "api_url": slack.url},
                           "pagerduty": {"routing_key_env": "E2E_PD_KEY", "api_url": pd.url},
                           "webhook": {"url": hook.url + "/hook"},
                           "console": {}}],
            "route": {"receiver": "oncall", "group_by": ["alertname"], "group_wait": "1s", "group_interval": "5s"},
        },
    }
    srv = server_factory(cfg, env={"E2E_SLACK_WEBHOOK": "https://hooks.slack.com/services/T0/B0/x",
                                   "E2E_PD_KEY": "0123456789abcdef0123456789abcdef"})
    try:
        # the slow ones in different octaves, so each is kept (one per series, slot and octave)
        sent = send(srv.http_url, [0.9] * 30 + [1.5, 3.1, 4.5, 9.5, 0.95])
        top3 = sorted(sent, reverse=True)[:3]
        deadline = time.time() + 90
        while time.time() < deadline and not (slack.messages and pd.requests and hook.requests):
            time.sleep(0.3)
        assert pd.requests and slack.messages and hook.requests, srv.output()[-3000:]

        trigger = pd.requests[0].json()
        links = [x["href"] for x in trigger["links"]]
        details = trigger["payload"]["custom_details"]["firing"][0]["example_traces"]
        for _, trace, span in top3:
            url = f"https://jaeger.example/trace/{trace}?span={span}"
            assert url in links
            assert url in str(slack.messages[0]["blocks"])
        assert [d["trace_id"] for d in details] == [t for _, t, _ in top3]
        assert details[0]["seconds"] == pytest.approx(9.5) and details[0]["duration"] == "9.5s"
        text = str(slack.messages[0]["blocks"])
        assert "Slow requests:" in text and "9.5s · trace " + top3[0][1][:8] in text

        alert = hook.requests[0].json()["alerts"][0]
        assert [e["traceId"] for e in alert["exemplars"]] == [t for _, t, _ in top3]
        assert alert["exemplars"][0]["url"] == f"https://jaeger.example/trace/{top3[0][1]}?span={top3[0][2]}"
        assert f"trace_id={top3[0][1]}" in srv.output()                      # the console receiver's log line
        # the traces are the ones the SDK made: ask the API for them too
        got = _traces(exemplars(srv, f'{M}{{service_name="checkout"}}'))
        assert {t for _, t, _ in top3} <= set(got)
    finally:
        for f in (slack, pd, hook):
            f.close()


def test_trace_url_is_checked_at_start(tmp_path):
    from serverproc import run_tocsin
    import yaml_writer

    yaml_writer.dump({"rules": {"files": []}, "notify": {"trace_url": "jaeger.example/trace/{{ .TraceID }}"}},
                     tmp_path / "tocsin.yaml")
    r = run_tocsin("config", "check", "--config", str(tmp_path / "tocsin.yaml"), cwd=tmp_path)
    assert r.returncode == 1 and "notify.trace_url" in r.stdout + r.stderr
    assert "http:// or https://" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    assert "tocsin.yaml:1:" in r.stdout + r.stderr or "tocsin.yaml:2:" in r.stdout + r.stderr, r.stdout + r.stderr


@pytest.mark.timeout(120)
def test_acknowledged_exemplars_survive_a_sigkill(tmp_path):
    """What was acknowledged is in the WAL; replayed after a SIGKILL, its exemplars come back
    (flushed ones from the store, the rest from the replay) — none lost, none made up."""
    import signal

    from backends import server_env
    from serverproc import ServerProcess

    cfg = {"rules": {"files": []}, "aggregation": {"flush_interval": "300ms"}}
    srv = ServerProcess(tmp_path, cfg, server_env("duckdb", None, tmp_path)).start()
    first = send(srv.http_url, [0.05] * 20 + [2.5])           # flushed before the kill
    time.sleep(1.0)
    second = send(srv.http_url, [0.07] * 20 + [5.5])          # acknowledged, maybe not flushed
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(10)
    srv.proc = None
    again = ServerProcess(tmp_path, cfg, server_env("duckdb", None, tmp_path)).start()
    try:
        got = _traces(exemplars(again, f'{M}{{service_name="checkout"}}'))
        slow = {t for d, t, _ in first + second if d > 1}
        assert slow <= set(got), (slow, got)
        assert set(got) <= {t for _, t, _ in first + second}
    finally:
        again.stop()
