"""Prometheus's promtool as the oracle for float PromQL: the same series are
loaded into promtool (its unit-test format) and into our engine; promtool
checks our engine's values as its expected samples.

Eval times sit between samples (…m30s) so that the window-edge rule, closed in
Prometheus 2.x and left-open in 3.x (ours), does not matter.
"""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import pytest

from collector.query.engine import Engine
from collector.query.seriesnotation import load

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")

SERIES = [
    ('http_requests_total{job="api", instance="a", code="200"}', "0+10x30"),
    ('http_requests_total{job="api", instance="b", code="200"}', "0+7x10 3+7x19"),  # counter reset
    ('http_requests_total{job="api", instance="a", code="500"}', "0+1x30"),
    ('http_requests_total{job="web", instance="c", code="200"}', "5+3x12 _x5 stale 1+1x10"),
    ('node_memory_bytes{instance="a"}', "100 120 90 150 130 110 160 170 100 95 120 140 150 145 130 "
                                        "125 110 105 100 90 95 99 120 130 135 140 150 160 155 150 149"),
    ('node_memory_bytes{instance="b"}', "50+2x30"),
    ('node_memory_bytes{instance="c"}', "81-1x30"),
    ('up{job="api", instance="a"}', "1x30"),
    ('up{job="api", instance="b"}', "1x10 0x20"),
    ('up{job="web", instance="c"}', "1x12 stale"),
    ('machine_info{instance="a", os="linux"}', "1x30"),
    ('machine_info{instance="b", os="bsd"}', "1x30"),
]

CASES = [
    ("http_requests_total", "10m30s"),
    ("rate(http_requests_total[5m])", "10m30s"),
    ("rate(http_requests_total[5m])", "12m30s"),
    ("irate(http_requests_total[5m])", "12m30s"),
    ("increase(http_requests_total[10m])", "20m30s"),
    ("delta(node_memory_bytes[5m])", "10m30s"),
    ("idelta(node_memory_bytes[5m])", "10m30s"),
    ("resets(http_requests_total[15m])", "15m30s"),
    ("changes(node_memory_bytes[10m])", "15m30s"),
    ("deriv(node_memory_bytes[10m])", "15m30s"),
    ("predict_linear(node_memory_bytes[10m], 600)", "15m30s"),
    ("sum by (job) (rate(http_requests_total[5m]))", "10m30s"),
    ("sum without (instance) (rate(http_requests_total[5m]))", "10m30s"),
    ("avg(node_memory_bytes)", "10m30s"),
    ("min(node_memory_bytes)", "10m30s"),
    ("max by (instance) (node_memory_bytes)", "10m30s"),
    ("count by (job) (up)", "10m30s"),
    ("count by (job) (up)", "25m30s"),
    ("stddev(node_memory_bytes)", "10m30s"),
    ("stdvar(node_memory_bytes)", "10m30s"),
    ("group by (job) (up)", "5m30s"),
    ("topk(2, node_memory_bytes)", "10m30s"),
    ("bottomk(1, node_memory_bytes)", "10m30s"),
    ("topk by (job) (1, http_requests_total)", "10m30s"),
    ("quantile(0.9, node_memory_bytes)", "10m30s"),
    ("count_values(\"value\", up)", "20m30s"),
    ("avg_over_time(node_memory_bytes[10m])", "15m30s"),
    ("sum_over_time(node_memory_bytes[10m])", "15m30s"),
    ("min_over_time(node_memory_bytes[10m])", "15m30s"),
    ("max_over_time(node_memory_bytes[10m])", "15m30s"),
    ("count_over_time(node_memory_bytes[10m])", "15m30s"),
    ("last_over_time(node_memory_bytes[10m])", "15m30s"),
    ("quantile_over_time(0.75, node_memory_bytes[10m])", "15m30s"),
    ("stddev_over_time(node_memory_bytes[10m])", "15m30s"),
    ("present_over_time(up[5m])", "20m30s"),
    ("max_over_time(rate(http_requests_total[5m])[10m:1m])", "20m30s"),
    ("rate(http_requests_total{code=~\"2..\"}[5m]) / ignoring(code) group_left "
     "sum without(code) (rate(http_requests_total[5m]))", "10m30s"),
    ("up * on(instance) group_left(os) machine_info", "5m30s"),
    ("http_requests_total / on(job, instance, code) http_requests_total", "5m30s"),
    ("node_memory_bytes > 100", "10m30s"),
    ("node_memory_bytes > bool 100", "10m30s"),
    ("100 < node_memory_bytes", "10m30s"),
    ("node_memory_bytes == on(instance) group_left node_memory_bytes", "10m30s"),
    ("up and on(instance) machine_info", "5m30s"),
    ("up or machine_info", "5m30s"),
    ("up unless on(instance) machine_info{os=\"bsd\"}", "5m30s"),
    ("node_memory_bytes % 7 + 2 ^ 2 - node_memory_bytes / 3", "10m30s"),
    ("-node_memory_bytes", "10m30s"),
    ("abs(-node_memory_bytes)", "10m30s"),
    ("sqrt(node_memory_bytes)", "10m30s"),
    ("ln(node_memory_bytes) + exp(node_memory_bytes / 100)", "10m30s"),
    ("ceil(node_memory_bytes / 7)", "10m30s"),
    ("floor(node_memory_bytes / 7)", "10m30s"),
    ("round(node_memory_bytes / 7)", "10m30s"),
    ("round(node_memory_bytes / 7, 0.5)", "10m30s"),
    ("clamp(node_memory_bytes, 60, 110)", "10m30s"),
    ("clamp_min(node_memory_bytes, 75)", "10m30s"),
    ("clamp_max(node_memory_bytes, 75)", "10m30s"),
    ("absent(nonexistent{job=\"x\"})", "10m30s"),
    ("absent(up)", "10m30s"),
    ("absent_over_time(nonexistent{job=\"x\"}[5m])", "10m30s"),
    ("label_replace(up, \"host\", \"$1-x\", \"instance\", \"(.*)\")", "5m30s"),
    ("label_replace(up, \"job\", \"\", \"job\", \".*\")", "5m30s"),
    ("label_join(up, \"both\", \"/\", \"job\", \"instance\")", "5m30s"),
    ("vector(1) + scalar(up{instance=\"a\"})", "5m30s"),
    ("time() - timestamp(up)", "5m30s"),
    ("up", "13m30s"),
    ("up", "20m30s"),
    ("http_requests_total{job=\"web\"}", "20m30s"),
    ("sum(rate(http_requests_total[5m])) by (code) > bool 0.5", "10m30s"),
    ("http_requests_total offset 5m", "10m30s"),
    ("rate(http_requests_total[5m] offset 2m)", "10m30s"),
    ("http_requests_total @ 300", "10m30s"),
    ("{__name__=~\"node_.*\", instance!=\"a\"}", "10m30s"),
    ("up{instance!~\"a|b\"}", "5m30s"),
]


def _labels_str(labels: dict) -> str:
    name = labels.get("__name__", "")
    rest = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _seconds(d: str) -> float:
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", d)
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


def _test_file(expr: str, eval_time: str, samples) -> str:
    lines = ["rule_files: []", "evaluation_interval: 1m", "tests:", "  - interval: 1m", "    input_series:"]
    for s, v in SERIES:
        lines += [f"      - series: {json.dumps(s)}", f"        values: {json.dumps(v)}"]
    lines += ["    promql_expr_test:", f"      - expr: {json.dumps(expr)}", f"        eval_time: {eval_time}",
              "        exp_samples:" + (" []" if not samples else "")]
    for labels, v in samples:
        lines += [f"          - labels: {json.dumps(_labels_str(labels))}", f"            value: {repr(v)}"]
    return "\n".join(lines) + "\n"


_GOT = re.compile(r'([A-Za-z_:][\w:]*)?(\{[^}]*\}) ([-+]?(?:[0-9.]+(?:E[-+]\d+)?|Inf|NaN))')


def _parse_got(text: str) -> dict[str, float]:
    m = re.search(r"got: (.*)", text, re.S)
    out = {}
    for name, labels, val in _GOT.findall(m.group(1) if m else ""):
        d = dict(re.findall(r'([\w.]+)="((?:[^"\\]|\\.)*)"', labels))
        if name:
            d["__name__"] = name
        out[_canon(d)] = float(val)
    return out


def _canon(labels: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


@pytest.fixture(scope="module")
def engine():
    return Engine(load(SERIES, 60))


@pytest.mark.parametrize("expr,at", CASES, ids=[f"{e} @{t}" for e, t in CASES])
def test_matches_promtool(engine, tmp_path, expr, at):
    samples = engine.instant_vector(expr, _seconds(at))
    f = tmp_path / "t.yaml"
    f.write_text(_test_file(expr, at, samples))
    run = subprocess.run([PROMTOOL, "test", "rules", str(f)], capture_output=True, text=True, timeout=60)
    if run.returncode == 0:
        return
    out = run.stdout + run.stderr
    assert "got:" in out, out
    got = _parse_got(out)
    ours = {_canon(l): v for l, v in samples}
    assert set(got) == set(ours), out
    for k, v in ours.items():  # promtool 2.42 compares exactly; allow float rounding only
        assert math.isclose(v, got[k], rel_tol=1e-9, abs_tol=1e-12), (k, v, got[k], out)
