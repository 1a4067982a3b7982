"""Binary-operator fill modifiers, limit_ratio, classic-bucket histogram functions
and info(), as Prometheus 3 answers them (cases written here)."""
from __future__ import annotations

import math

import pytest

from collector.query.aggregate import ratio_offset
from p3 import L, engine, instant, same

LR = """
left_vector{label="a"} 10
left_vector{label="b"} 20
left_vector{label="c"} 30
right_vector{label="a"} 100
right_vector{label="b"} 200
right_vector{label="d"} 400
"""
REQ = """
requests{method="GET", status="200"} 100
requests{method="POST", status="200"} 200
requests{method="GET", status="500"} 10
limits{status="200"} 1000
limits{status="404"} 500
limits{status="500"} 50
"""
CPU = """
cpu_info{instance="a", cpu="0"} 1
cpu_info{instance="a", cpu="1"} 1
cpu_info{instance="b", cpu="0"} 1
node_meta{instance="a"} 100
node_meta{instance="c"} 300
"""

FILL = [
    (LR, "left_vector + fill(0) right_vector",
     {L(label="a"): 110, L(label="b"): 220, L(label="c"): 30, L(label="d"): 400}),
    (LR, "left_vector + fill_left(0) right_vector", {L(label="a"): 110, L(label="b"): 220, L(label="d"): 400}),
    (LR, "left_vector + fill_right(0) right_vector", {L(label="a"): 110, L(label="b"): 220, L(label="c"): 30}),
    (LR, "left_vector - fill_left(5) fill_right(7) right_vector",
     {L(label="a"): -90, L(label="b"): -180, L(label="c"): 23, L(label="d"): -395}),
    (LR, "left_vector + fill(NaN) right_vector",
     {L(label="a"): 110, L(label="b"): 220, L(label="c"): math.nan, L(label="d"): math.nan}),
    (LR, "left_vector != fill(30) right_vector",   # filtered: left values, name kept where it is real
     {L(__name__="left_vector", label="a"): 10, L(__name__="left_vector", label="b"): 20, L(label="d"): 30}),
    (LR, "left_vector > bool fill(25) right_vector",
     {L(label="a"): 0, L(label="b"): 0, L(label="c"): 1, L(label="d"): 0}),
    (LR, "left_vector + on(label) fill(0) nothing", {L(label="a"): 10, L(label="b"): 20, L(label="c"): 30}),
    (LR, "nothing + fill_right(0) left_vector", {}),
    (REQ, "requests + on(status) group_left fill_left(0) limits",
     {L(method="GET", status="200"): 1100, L(method="POST", status="200"): 1200,
      L(method="GET", status="500"): 60, L(status="404"): 500}),
    (REQ, "requests / on(status) group_left fill_right(1) limits",
     {L(method="GET", status="200"): 0.1, L(method="POST", status="200"): 0.2, L(method="GET", status="500"): 0.2}),
    # group_right swaps the operands before the fill values apply (as Prometheus does)
    (CPU, "node_meta * on(instance) group_right fill_left(1) cpu_info",
     {L(instance="a", cpu="0"): 100, L(instance="a", cpu="1"): 100, L(instance="c"): 300}),
    (CPU, "node_meta * on(instance) group_right fill_right(0) cpu_info",
     {L(instance="a", cpu="0"): 100, L(instance="a", cpu="1"): 100, L(instance="b", cpu="0"): 0}),
]


@pytest.mark.parametrize("data,expr,want", FILL, ids=[c[1] for c in FILL])
def test_fill_modifiers(data, expr, want):
    got = instant(engine(data), expr, 0)
    assert same(got, {k: float(v) for k, v in want.items()}), got


def test_fill_in_range_queries_is_per_step():
    e = engine('a{l="x"} 1 _ 3\nb{l="x"} _ 20 _\nb{l="y"} 5 _ _')
    r = e.range("a + fill(0) b", 0, 600, 300)
    got = {tuple(sorted(d["metric"].items())): [(t, v) for t, v in d["values"]] for d in r.data}
    assert got == {(("l", "x"),): [(0, "1"), (300, "20"), (600, "3")], (("l", "y"),): [(0, "5")]}


HTTP = "\n".join(f'http_requests{{job="api", instance="{i}", group="{g}"}} 0+{10 * (n + 1)}x10'
                 for n, (i, g) in enumerate([(0, "production"), (1, "production"), (0, "canary"), (1, "canary"),
                                             (2, "canary"), (3, "canary")]))


def test_limit_ratio_complements_and_hash():
    e = engine(HTTP)
    labels = [dict(k) for k in instant(e, "http_requests", 3000)]
    picked = {k for k in instant(e, "limit_ratio(0.5, http_requests)", 3000)}
    assert picked == {frozenset(l.items()) for l in labels if ratio_offset(l) < 0.5}
    for r in (0.2, 0.5, 0.8):
        assert instant(e, f"count(limit_ratio({r}, http_requests) or limit_ratio({r - 1}, http_requests))",
                       3000) == {L(): 6.0}
        assert instant(e, f"count(limit_ratio({r}, http_requests) and limit_ratio({r - 1}, http_requests))",
                       3000) == {}
    assert instant(e, "count(limit_ratio(0, http_requests))", 3000) == {}
    res = e.instant("count(limit_ratio(1.1, http_requests))", 3000)
    assert res.data[0]["value"][1] == "6"
    assert res.warnings == ["PromQL warning: ratio value should be between -1 and 1, got 1.1, capping to 1"]


CLASSIC = """
h_bucket{le="0", start="positive"} 0+0x10
h_bucket{le="0.1", start="positive"} 0+5x10
h_bucket{le=".2", start="positive"} 0+7x10
h_bucket{le="1e0", start="positive"} 0+11x10
h_bucket{le="+Inf", start="positive"} 0+11x10
h_bucket{le="-.25", start="negative"} 0+0x10
h_bucket{le="-.2", start="negative"} 0+1x10
h_bucket{le="-0.1", start="negative"} 0+2x10
h_bucket{le="0.3", start="negative"} 0+2x10
h_bucket{le="+Inf", start="negative"} 0+2x10
mixed_bucket{i="1", le="0.1"} 0+1x10
mixed_bucket{i="1", le="0.2"} 0+1x10
mixed_bucket{i="1", le="2e-1"} 0+1x10
mixed_bucket{i="1", le="2.0e-1"} 0+1x10
mixed_bucket{i="1", le="+Inf"} 0+4x10
mixed_bucket{i="2", le="+inf"} 0+0x10
mixed_bucket{i="2", le="+Inf"} 0+0x10
"""
HIST = [
    ("histogram_fraction(0, 0.2, h_bucket)", {L(start="positive"): 7 / 11, L(start="negative"): 0.0}),
    ("histogram_fraction(0, 0.2, rate(h_bucket[10m]))", {L(start="positive"): 7 / 11, L(start="negative"): 0.0}),
    ("histogram_fraction(-Inf, 0.05, h_bucket)", {L(start="positive"): 2.5 / 11, L(start="negative"): 1.0}),
    ("histogram_quantile(0.25, h_bucket)", {L(start="positive"): 0.055, L(start="negative"): -0.225}),
    ("histogram_quantile(0, h_bucket)", {L(start="positive"): 0.0, L(start="negative"): -0.25}),
    ("histogram_quantile(1, h_bucket)", {L(start="positive"): 1.0, L(start="negative"): -0.1}),
    # the same bound written three ways is one bucket holding all three counts
    ("histogram_quantile(0.5, rate(mixed_bucket[10m]))", {L(i="1"): 0.15, L(i="2"): math.nan}),
    ("histogram_quantile(0.75, rate(mixed_bucket[10m]))", {L(i="1"): 0.2, L(i="2"): math.nan}),
]


@pytest.mark.parametrize("expr,want", HIST, ids=[c[0] for c in HIST])
def test_classic_bucket_functions(expr, want):
    got = instant(engine(CLASSIC), expr, 3000)
    assert set(got) == set(want)
    for k, v in want.items():
        assert (math.isnan(v) and math.isnan(got[k])) or got[k] == pytest.approx(v, rel=1e-12, abs=1e-15), (k, got)


def test_classic_annotations():
    e = engine('n_bucket{le="0.1"} 0+2x10\nn_bucket{le="1"} 0+1x10\nn_bucket{le="10"} 0+5x10\n'
               'n_bucket{le="+Inf"} 0+4x10')
    r = e.instant("histogram_quantile(0.5, n_bucket)", 3000)
    assert float(r.data[0]["value"][1]) == pytest.approx(1 + 9 * (25 - 20) / 30)
    assert r.infos == ['PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see '
                       'https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) '
                       'for metric name "n_bucket"']
    r = e.instant("histogram_quantile(1.01, n_bucket)", 3000)
    assert r.warnings == ["PromQL warning: quantile value should be between 0 and 1, got 1.01"]
    assert engine("m 1").instant("quantile(-1, m)", 0).warnings[0].endswith("got -1")
    assert engine("m 1").instant("quantile_over_time(NaN, m[5m])", 0).warnings[0].endswith("got NaN")


INFO = """
metric{instance="a", job="1", label="value"} 0 1 2
other{instance="a", job="2"} 5 5 5
with_data{instance="a", job="1", data="base"} 0 1 2
target_info{instance="a", job="1", data="info", another="x"} 1 1 1
build_info{instance="a", job="1", build="b"} 1 1 1
"""
INFO_CASES = [
    ('info(metric, {data=~".+"})', {L(__name__="metric", instance="a", job="1", label="value", data="info"): 2}),
    ("info(metric)", {L(__name__="metric", instance="a", job="1", label="value", data="info", another="x"): 2}),
    ("info(other)", {L(__name__="other", instance="a", job="2"): 5}),
    ('info(metric, {nope=~".+"})', {}),
    ('info(metric, {data=~".+", nope=~".*"})',
     {L(__name__="metric", instance="a", job="1", label="value", data="info"): 2}),
    ("info(with_data)", {L(__name__="with_data", instance="a", job="1", data="base", another="x"): 2}),
    ('info(metric, {__name__="build_info"})', {L(__name__="metric", instance="a", job="1", label="value", build="b"): 2}),
    ('info(build_info, {__name__=~".+_info"})', {L(__name__="build_info", instance="a", job="1", build="b"): 1}),
    ('info(metric, {__name__="nothing_info", data=~".+"})', {}),
]


@pytest.mark.parametrize("expr,want", INFO_CASES, ids=[c[0] for c in INFO_CASES])
def test_info(expr, want):
    got = instant(engine(INFO), expr, 600)
    assert same(got, {k: float(v) for k, v in want.items()}), got


def test_info_follows_info_series_changes_over_time():
    e = engine('m{instance="a", job="1"} 0 1 2\ntarget_info{instance="a", job="1", v="old"} 1 1 stale\n'
               'target_info{instance="a", job="1", v="new"} _ _ 1')
    r = e.range("info(m)", 0, 600, 300)
    got = {d["metric"]["v"]: [t for t, _ in d["values"]] for d in r.data}
    assert got == {"old": [0, 300], "new": [600]}
