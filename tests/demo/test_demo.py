"""``tocsin demo``: the schedule, the shop's plans, and the real SDK → real server path."""
import argparse
import io
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from collector.durations import parse_duration
from collector import demo
from collector.demo_shop import (INCIDENT, NORMAL, RECOVERED, ROUTES, SERVICES, Call, Schedule, Shop,
                                 expected_p95)

REPO = Path(__file__).resolve().parents[2]


def test_schedule_phase_at_time():
    s = Schedule(incident_after=60, incident_for=180)
    assert [s.phase_at(t) for t in (0, 59.9, 60, 239.9, 240, 10_000)] == \
        [NORMAL, NORMAL, INCIDENT, INCIDENT, RECOVERED, RECOVERED]
    assert Schedule(0, 5).phase_at(0) == INCIDENT
    assert Schedule(60, 0).phase_at(120) == NORMAL        # --incident-for 0: no incident at all


def _flatten(c: Call):
    yield c
    for _, child in c.children:
        yield from _flatten(child)


def test_shop_is_deterministic_and_calls_nest():
    def plans(seed):
        shop = Shop(seed)
        return [shop.request(NORMAL) for _ in range(500)]

    plans1 = plans(3)
    assert plans1 == plans(3) and plans1 != plans(4)
    assert 12 <= len(ROUTES) <= 14 and {r.service for r in ROUTES} == set(SERVICES)
    seen_routes, errors = set(), 0
    for plan in plans1:
        assert plan.route.service == "frontend"
        for c in _flatten(plan):
            seen_routes.add(c.route.key)
            errors += c.error
            assert c.duration_s > 0 and (c.status_code >= 500) == c.error
            for offset, child in c.children:      # a downstream call runs inside its caller
                assert 0 < offset and offset + child.duration_s < c.duration_s
    assert len(seen_routes) == len(ROUTES)
    assert 0 < errors < 50


def _rule_thresholds():
    rules = YAML(typ="safe").load((REPO / "rules" / "latency.yaml").read_text())
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "CheckoutSlow")
    lat = rule["latency"]
    return parse_duration(lat["above"]), parse_duration(lat["warn_above"]), lat["min_count"]


def test_incident_crosses_the_example_rule_and_normal_stays_below_its_warning():
    above, warn_above, _ = _rule_thresholds()
    assert expected_p95("checkout", NORMAL) < warn_above
    assert expected_p95("checkout", RECOVERED) < warn_above
    assert expected_p95("checkout", INCIDENT) > 1.5 * above
    assert expected_p95("catalog", INCIDENT) < warn_above      # only checkout (and its callers) slow down


def test_default_rate_gives_the_rule_enough_requests():
    _, _, min_count = _rule_thresholds()
    shop, checkout = Shop(1), 0
    for _ in range(20 * 60):                                    # one minute at the default 20 req/s
        checkout += sum(c.route.service == "checkout" for c in _flatten(shop.request(NORMAL)))
    assert checkout > 5 * min_count


def test_target_from_flags_then_environment_then_default():
    t = demo.resolve_target("127.0.0.1:4318", None, {})
    assert (t.protocol, t.endpoint) == ("http", "http://127.0.0.1:4318/v1/traces")
    t = demo.resolve_target("http://h:4317", "grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"})
    assert (t.protocol, t.endpoint) == ("grpc", "http://h:4317")
    t = demo.resolve_target(None, None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert (t.protocol, t.endpoint, t.shown) == ("grpc", None, "http://x:4317")   # the exporter reads the variable
    assert demo.resolve_target(None, None, {}).endpoint == "http://127.0.0.1:4318/v1/traces"
    assert demo.resolve_target(None, "grpc", {}).endpoint == "http://127.0.0.1:4317"


def _query(srv, expr):
    r = httpx.get(f"{srv.api_url}/api/v1/query", params={"query": expr}, timeout=30)
    assert r.status_code == 200, r.text
    return {tuple(sorted(s["metric"].items())): float(s["value"][1]) for s in r.json()["data"]["result"]}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_demo_traffic_reaches_a_real_server(server_factory, protocol):
    srv = server_factory({"rules": {"files": []}})
    target = srv.http_url if protocol == "http" else f"http://{srv.grpc}"
    out = io.StringIO()
    rc = demo.main(["--target", target, "--protocol", protocol, "--duration", "5s", "--rate", "150",
                    "--incident-after", "0", "--incident-for", "5s", "--seed", "7"], out=out)
    assert rc == 0
    lines = out.getvalue().splitlines()
    assert "phase=incident" in lines[0] and lines[-1].startswith("demo done:")

    calls = _query(srv, "sum by (service_name) (rate(traces_span_metrics_calls_total[1m]))")
    assert {dict(k)["service_name"] for k in calls} == set(SERVICES)
    assert all(v > 0 for v in calls.values())
    p95 = _query(srv, 'histogram_quantile(0.95, sum by (service_name) '
                      '(rate(traces_span_metrics_duration_seconds{service_name="checkout"}[1m])))')
    assert list(p95.values())[0] > 0.5
    routes = _query(srv, "count by (service_name) (sum by (service_name, http_route) "
                         "(rate(traces_span_metrics_calls_total[1m])))")
    assert sum(routes.values()) == len(ROUTES)
    errors = _query(srv, 'sum(rate(traces_span_metrics_calls_total{status_code="STATUS_CODE_ERROR",'
                         'http_response_status_code="500"}[1m]))')
    assert errors and list(errors.values())[0] > 0


def test_demo_prints_one_line_per_phase_change(server_factory):
    """A fake clock runs five simulated minutes in a moment; spans still end 'now'."""
    srv = server_factory({"rules": {"files": []}})
    now = [0.0]
    args = argparse.Namespace(target=srv.http_url, protocol="http", duration=300.0, incident_after=60.0,
                              incident_for=180.0, rate=2.0, seed=1)
    out = io.StringIO()
    assert demo.run(args, out=out, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + 0.1),
                    environ={}) == 0
    phases = [line.split("phase=")[1].split(":")[0] for line in out.getvalue().splitlines() if "phase=" in line]
    assert phases == [NORMAL, INCIDENT, RECOVERED]
    calls = _query(srv, "sum(increase(traces_span_metrics_calls_total{service_name=\"frontend\"}[5m]))")
    assert 500 <= round(list(calls.values())[0]) <= 700      # 2 req/s for 300 simulated seconds


def test_demo_before_the_server_says_so(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:          # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = subprocess.run([sys.executable, "-m", "collector", "demo", "--target", f"127.0.0.1:{port}"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr == (f"tocsin demo: nothing answers at 127.0.0.1:{port} (connection refused): start the server "
                        "first (make run), or point --target or OTEL_EXPORTER_OTLP_ENDPOINT at it\n")


def test_ctrl_c_stops_the_demo_promptly_even_when_the_server_is_gone(server_factory, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    srv = server_factory({"rules": {"files": []}})
    proc = subprocess.Popen([sys.executable, "-m", "collector", "demo", "--target", srv.http_url, "--rate", "50"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert "phase=normal" in proc.stdout.readline()
    srv.stop()                                   # spans now queue up with nowhere to go
    time.sleep(1.5)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert time.monotonic() - t0 < 10, out
    assert "demo done:" in out
