"""Native histograms in Prometheus's notation, as Prometheus 3 answers them:
the histogram_* functions on exponential schemas (exponential interpolation,
zero bucket, negative buckets, schema reduction), rate/increase/delta/irate/
idelta/resets/changes over samples, aggregation, operators and the
annotations. Cases written here; every expected value is worked out below from
the bucket boundaries (positive bucket i of schema s is (2^((i-1)/2^s), 2^(i/2^s)])."""
from __future__ import annotations

import math

import pytest

from collector.query import exphist as X
from p3 import L, engine, same

NAN = math.nan


def values(e, expr, t):
    r = e.instant(expr, t)
    out = {}
    for d in r.data:
        key = frozenset(d["metric"].items())
        out[key] = float(d["value"][1]) if "value" in d else d["histogram"][1]
    return out, r.warnings, r.infos


SINGLE = "h {{schema:0 sum:5 count:4 buckets:[1 2 1]}}"            # 1 in (0.5,1], 2 in (1,2], 1 in (2,4]
EMPTY = "h {{}}"
INCR = "h {{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{sum:2 count:1 buckets:[1] offset:1}}x10"   # 5m apart
ZERO = "h {{schema:0 z_bucket:1 z_bucket_w:0.5 sum:0.25 count:1}}"
NEG = "h {{schema:0 sum:-5 count:4 n_buckets:[1 2 1]}}"
BALANCED = "h {{schema:0 sum:4 count:4 buckets:[1 2 1]}}+{{schema:0 sum:-4 count:4 n_buckets:[1 2 1]}}x1"
LOWRES = "h {{schema:-1 sum:4 count:1 buckets:[1] offset:1}}+{{schema:0 sum:4 count:4 buckets:[2 2] offset:1}}x1"
Q1 = "h {{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}x1"
Q2 = "h {{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 n_buckets:[2 3 0 1 4]}}x1"
MINUS10 = "h {{schema:0 count:10 sum:-100 n_buckets:[0 0 0 0 10]}}x1"   # ten -10s, all in [-16, -8)
CUSTOM = "h {{schema:-53 sum:6 count:4 custom_values:[1 2 4] buckets:[0 2 2]}}"   # [-inf,1] (1,2] (2,4] (4,inf)

# Quantiles in Q1 by exponential interpolation: ranks counted from the top for q >= 0.5.
Q1_099 = 2 ** (3 + (4 - 0.12) / 4)       # top bucket (8,16] holds 4; rank 0.12 from the top
Q1_09 = 2 ** (3 + (4 - 1.2) / 4)
Q1_06 = 2 ** (2 + (5 - 4.8) / 1)         # (4,8] holds 1, reached at 5 from the top
Q1_05 = 2 ** (0 + (8 - 6) / 3)           # (1,2] holds 3, reached at 8 from the top
MINUS10_VAR = (math.sqrt(16 * 8) - 10) ** 2   # every observation at -sqrt(8*16), mean -10

CASES = [
    # histogram_count / sum / avg / fraction / quantile of one histogram
    (SINGLE, "histogram_count(h)", 60, {L(): 4.0}),
    (SINGLE, "histogram_sum(h)", 60, {L(): 5.0}),
    (SINGLE, "histogram_avg(h)", 60, {L(): 1.25}),
    (SINGLE, "histogram_fraction(1, 2, h)", 60, {L(): 0.5}),
    (SINGLE, "histogram_fraction(0, 8, h)", 60, {L(): 1.0}),
    (SINGLE, "histogram_fraction(1, 1.5, h)", 60, {L(): 2 * math.log2(1.5) / 4}),   # exponential within (1,2]
    (SINGLE, "histogram_quantile(0.5, h)", 60, {L(): math.sqrt(2)}),
    (SINGLE, "histogram_quantile(0.5, h)", 400, {}),                     # past the 5m lookback
    (EMPTY, "histogram_count(h)", 60, {L(): 0.0}),
    (EMPTY, "histogram_sum(h)", 60, {L(): 0.0}),
    (EMPTY, "histogram_avg(h)", 60, {L(): NAN}),
    (EMPTY, "histogram_fraction(-Inf, +Inf, h)", 60, {L(): NAN}),
    (EMPTY, "histogram_quantile(0.5, h)", 60, {L(): NAN}),
    # the sum of 10 increments: 4+10 observations, sum 4+20
    (INCR, "histogram_count(h)", 3000, {L(): 14.0}),
    (INCR, "histogram_sum(h)", 3000, {L(): 24.0}),
    (INCR, "histogram_avg(h)", 3000, {L(): 24 / 14}),
    (INCR, "histogram_fraction(1, 2, h)", 3000, {L(): 12 / 14}),
    (INCR, "histogram_quantile(0.5, h)", 3000, {L(): math.sqrt(2)}),
    # rate over 10m holds two 5m increments: 2 observations / 600 s, sum 4 / 600 s
    (INCR, "histogram_count(rate(h[10m]))", 3000, {L(): 2 / 600}),
    (INCR, "histogram_sum(rate(h[10m]))", 3000, {L(): 4 / 600}),
    (INCR, "histogram_count(increase(h[10m]))", 3000, {L(): 2.0}),
    (INCR, "histogram_quantile(0.5, rate(h[10m]))", 3000, {L(): math.sqrt(2)}),
    (INCR, "histogram_count(irate(h[10m]))", 3000, {L(): 1 / 300}),
    (INCR, "histogram_count(rate(h[20m:5m]))", 3000, {L(): 4 / 1200}),          # over a subquery
    (INCR, "resets(h[1h])", 3000, {L(): 0.0}),
    (INCR, "changes(h[1h])", 3000, {L(): 10.0}),
    (INCR, "count_over_time(h[1h])", 3000, {L(): 11.0}),
    (INCR, "histogram_count(last_over_time(h[10m]))", 3000, {L(): 14.0}),
    (INCR, "histogram_count(sum_over_time(h[10m]))", 3000, {L(): 27.0}),       # 13 + 14 (samples at 45m, 50m)
    (INCR, "histogram_count(avg_over_time(h[10m]))", 3000, {L(): 13.5}),
    (INCR, "max_over_time(h[10m])", 3000, {}),                                   # floats only
    # schema -1 merged with schema 0: (1,4] holds everything
    (LOWRES, "histogram_count(h)", 300, {L(): 5.0}),
    (LOWRES, "histogram_sum(h)", 300, {L(): 8.0}),
    (LOWRES, "histogram_fraction(1, 4, h)", 300, {L(): 1.0}),
    # zero bucket only: spread evenly over [-0.5, 0.5], the median is 0
    (ZERO, "histogram_fraction(-0.5, 0.5, h)", 60, {L(): 1.0}),
    (ZERO, "histogram_quantile(0.5, h)", 60, {L(): 0.0}),
    (ZERO, "histogram_avg(h)", 60, {L(): 0.25}),
    # negative buckets mirror the positive ones
    (NEG, "histogram_fraction(-2, -1, h)", 60, {L(): 0.5}),
    (NEG, "histogram_quantile(0.5, h)", 60, {L(): -math.sqrt(2)}),
    (NEG, "histogram_avg(h)", 60, {L(): -1.25}),
    (BALANCED, "histogram_count(h)", 300, {L(): 8.0}),
    (BALANCED, "histogram_fraction(0, 4, h)", 300, {L(): 0.5}),
    (BALANCED, "histogram_quantile(0.5, h)", 300, {L(): 0.5}),   # the lower bound of the first populated bucket
    # quantiles around a zero bucket
    (Q1, "histogram_quantile(1, h)", 300, {L(): 16.0}),
    (Q1, "histogram_quantile(0.99, h)", 300, {L(): Q1_099}),
    (Q1, "histogram_quantile(0.9, h)", 300, {L(): Q1_09}),
    (Q1, "histogram_quantile(0.6, h)", 300, {L(): Q1_06}),
    (Q1, "histogram_quantile(0.5, h)", 300, {L(): Q1_05}),
    (Q1, "histogram_quantile(0.1, h)", 300, {L(): 0.001 * 1.2 / 2}),   # linear in [0, 0.001]
    (Q1, "histogram_quantile(0, h)", 300, {L(): 0.0}),
    (Q1, "histogram_quantile(1.001, h)", 300, {L(): math.inf}),
    (Q1, "histogram_quantile(-1, h)", 300, {L(): -math.inf}),
    (Q2, "histogram_quantile(1, h)", 300, {L(): 0.0}),
    (Q2, "histogram_quantile(0.5, h)", 300, {L(): -Q1_05}),
    (Q2, "histogram_quantile(0.9, h)", 300, {L(): -0.001 * 1.2 / 2}),
    # stddev / stdvar at the geometric middle of the bucket
    (MINUS10, "histogram_stdvar(h)", 300, {L(): MINUS10_VAR}),
    (MINUS10, "histogram_stddev(h)", 300, {L(): math.sqrt(MINUS10_VAR)}),
    ("h {{schema:0 count:2 sum:NaN buckets:[2]}}x1", "histogram_stddev(h)", 300, {L(): NAN}),
    ("h {{schema:0 count:2 sum:Inf buckets:[2]}}x1", "histogram_stdvar(h)", 300, {L(): math.inf}),
    # custom buckets: linear interpolation; the +Inf bucket answers its lower bound
    (CUSTOM, "histogram_quantile(0.25, h)", 60, {L(): 1.5}),
    (CUSTOM, "histogram_quantile(0.5, h)", 60, {L(): 2.0}),
    (CUSTOM, "histogram_quantile(0.9, h)", 60, {L(): 2 + 2 * (2 - 0.4) / 2}),
    (CUSTOM, "histogram_fraction(0, 2, h)", 60, {L(): 0.5}),
    (CUSTOM, "histogram_fraction(1, 3, h)", 60, {L(): 0.75}),      # linear: (1,2] whole, half of (2,4]
    (CUSTOM, "histogram_stdvar(h)", 60, {L(): (2 * (1.5 - 1.5) ** 2 + 2 * (3 - 1.5) ** 2) / 4}),
    ("h {{schema:-53 sum:9 count:1 custom_values:[1] buckets:[0 1]}}", "histogram_quantile(0.5, h)", 60,
     {L(): 1.0}),                                                  # in the +Inf bucket: its lower bound
    # aggregation
    ('h{n="1"} {{schema:0 sum:0 count:0 buckets:[1]}}+{{schema:0 sum:1 count:1 buckets:[1]}}x10\n'
     'h{n="2"} {{schema:0 sum:0 count:0 buckets:[1]}}+{{schema:0 sum:2 count:1 buckets:[1]}}x10',
     "histogram_sum(sum(h))", 3000, {L(): 30.0}),
    ('h{n="1"} {{schema:0 sum:0 count:0 buckets:[1]}}+{{schema:0 sum:1 count:1 buckets:[1]}}x10\n'
     'h{n="2"} {{schema:0 sum:0 count:0 buckets:[1]}}+{{schema:0 sum:2 count:1 buckets:[1]}}x10',
     "histogram_sum(sum(last_over_time(h[5m])))", 3000, {L(): 30.0}),
    ('h{n="1"} {{schema:0 sum:2 count:2 buckets:[2]}}\nh{n="2"} {{schema:1 sum:4 count:2 buckets:[0 2]}}',
     "histogram_count(avg(h))", 0, {L(): 2.0}),
    ('h{n="1"} {{schema:0 sum:2 count:2 buckets:[2]}}\nh{n="2"} {{schema:1 sum:4 count:2 buckets:[2]}}',
     "histogram_fraction(0, 1, sum(h))", 0, {L(): 1.0}),     # schema 1 (0.707,1] folds into schema 0 (0.5,1]
    ('h{n="1"} {{schema:0 sum:2 count:2 buckets:[2]}}\nh{n="2"} {{schema:1 sum:4 count:2 buckets:[2]}}',
     "histogram_fraction(0.5, 0.75, sum(h))", 0, {L(): math.log2(0.75) + 1}),   # all 4 in (0.5,1] after the fold
    ('h{n="1"} {{schema:0 sum:2 count:2 buckets:[2]}}\nh{n="2"} {{schema:0 sum:4 count:4 buckets:[4]}}',
     "count(h)", 0, {L(): 2.0}),
    # operators
    (SINGLE, "histogram_count(h * 3)", 0, {L(): 12.0}),
    (SINGLE, "histogram_count(h / 2)", 0, {L(): 2.0}),
    (SINGLE, "histogram_sum(-h)", 0, {L(): -5.0}),
    (SINGLE, "histogram_count(h + h)", 0, {L(): 8.0}),
    (SINGLE, "histogram_count(h - h)", 0, {L(): 0.0}),
    # histogram * float and histogram / float between vectors; float / histogram is dropped
    ("h {{schema:0 count:4 sum:6 z_bucket:1 z_bucket_w:0.001 buckets:[3] n_buckets:[0]}}\nf 3",
     "histogram_count(h * f)", 0, {L(): 12.0}),
    ("h {{schema:0 count:4 sum:6 z_bucket:1 z_bucket_w:0.001 buckets:[3]}}\nf 3",
     "histogram_sum(f * h)", 0, {L(): 18.0}),
    ("h {{schema:0 count:4 sum:6 z_bucket:1 z_bucket_w:0.001 buckets:[3]}}\nf 3",
     "histogram_sum(h / f)", 0, {L(): 2.0}),
    ("h {{schema:0 count:4 sum:6 buckets:[4]}}\nf 3", "f / h", 0, {}),
    # the same buckets one step apart in schema -1, 0 and +1: the median is the middle on a log scale
    ('v{s="-1"} {{schema:-1 sum:6 count:5 buckets:[0 5]}}\nv{s="0"} {{schema:0 sum:4 count:5 buckets:[0 5]}}\n'
     'v{s="+1"} {{schema:1 sum:4 count:5 buckets:[0 5]}}', "histogram_quantile(0.5, v)", 0,
     {L(s="-1"): 2.0, L(s="0"): math.sqrt(2), L(s="+1"): 2 ** 0.25}),
    ('v{s="+1"} {{schema:1 sum:4 count:5 n_buckets:[0 0 5]}}', "histogram_fraction(-(2 ^ 0.75), 0, v)", 0,
     {L(s="+1"): 0.5}),
    # positive and negative buckets around a zero bucket: symmetric, linear inside the zero bucket
    ("h {{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
     "histogram_quantile(0.5, h)", 0, {L(): 0.0}),
    ("h {{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
     "histogram_quantile(0.55, h)", 0, {L(): -0.001 + 0.002 * (14 - 0.45 * 24) / 4}),  # 10 above it, rank 10.8 from the top
    ("h {{schema:0 count:2 sum:2 buckets:[2]}}", "histogram_count(h)", 0, {L(): 2.0}),
    ("h {{schema:0 count:24 sum:100 z_bucket:4 z_bucket_w:0.001 buckets:[2 3 0 1 4] n_buckets:[2 3 0 1 4]}}",
     "histogram_fraction(-0.0005, 0.0005, h)", 0, {L(): 2 / 24}),
    ("h {{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
     "histogram_fraction(0, 0.0005, h)", 0, {L(): 1 / 12}),
    ("h {{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
     "histogram_fraction(1.5, 2, h)", 0, {L(): 3 * (1 - math.log2(1.5)) / 12}),
    ("h {{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
     "histogram_fraction(NaN, 42, h)", 0, {L(): NAN}),
    ("h {{schema:0 count:12 sum:100 z_bucket:2 z_bucket_w:0.001 buckets:[2 3 0 1 4]}}",
     "histogram_fraction(42, 3.1415, h)", 0, {L(): 0.0}),
    # dividing by zero: count and sum go to Inf, every bucket but the zero bucket goes
    ("h {{schema:0 count:4 sum:6 z_bucket:1 z_bucket_w:0.001 buckets:[3]}}\nf 0",
     "histogram_count(h / 0)", 0, {L(): math.inf}),
    ("h {{schema:0 count:4 sum:6 z_bucket:1 z_bucket_w:0.001 buckets:[3]}}\nf 0",
     "histogram_sum(h / f)", 0, {L(): math.inf}),
    ("h {{schema:0 count:4 sum:6 buckets:[3]}}", "histogram_sum(h * 0 / 0)", 0, {L(): NAN}),
    # custom bounds that differ are reconciled onto the bounds both have
    ('h{s="1"} {{schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]}}\n'
     'h{s="2"} {{schema:-53 sum:1 count:1 custom_values:[2 10] buckets:[0 1]}}',
     "histogram_fraction(0, 10, sum(h))", 0, {L(): 1.0}),
    ('h {{schema:-53 sum:1 count:1 custom_values:[5] buckets:[1]}} {{schema:-53 sum:2 count:2 '
     'custom_values:[5 10] buckets:[2]}}', "resets(h[10m])", 300, {L(): 0.0}),
    ('h {{schema:-53 sum:1 count:1 custom_values:[5] buckets:[1]}} {{schema:-53 sum:2 count:2 '
     'custom_values:[5 10] buckets:[2]}}', "changes(h[10m])", 300, {L(): 1.0}),
    # a counter reset inside the window
    ("h {{count:4 sum:4 buckets:[4]}} {{count:6 sum:6 buckets:[6]}} {{count:1 sum:1 buckets:[1]}}",
     "resets(h[15m])", 600, {L(): 1.0}),
    ("h {{count:4 sum:4 buckets:[4]}} {{count:6 sum:6 buckets:[6]}} {{count:1 sum:1 buckets:[1]}}",
     "changes(h[15m])", 600, {L(): 2.0}),
    ("h {{count:4 sum:4 buckets:[4]}} {{count:6 sum:6 buckets:[6]}} {{count:1 sum:1 buckets:[1]}}",
     "histogram_count(irate(h[15m]))", 600, {L(): 1 / 300}),       # after a reset: the new value / 5m
    ("h {{count:4 sum:4 buckets:[4]}} {{count:6 sum:6 buckets:[6]}} {{count:1 sum:1 buckets:[1]}}",
     "histogram_count(increase(h[15m]))", 600, {L(): (2 + 1) * 900 / 600}),   # 6 - 4 + 1, extrapolated
    # a bucket that vanishes is a reset too (count kept)
    ("h {{count:2 sum:2 buckets:[2]}} {{count:2 sum:2 buckets:[0 2]}}", "resets(h[10m])", 300, {L(): 1.0}),
]


@pytest.mark.parametrize("load,expr,t,want", CASES, ids=[f"{c[1]}@{c[2]}" for c in CASES])
def test_native_histogram_families(load, expr, t, want):
    e = engine(load)
    got, _, _ = values(e, expr, t)
    assert same(got, want), (got, want)


def test_rate_of_a_two_sided_histogram_matches_hand_extrapolation():
    # 15 s apart; (4m15, 5m] holds three samples over 30 s, extrapolated to 45 s.
    e = engine("h {{schema:1 count:12 sum:18.4 z_bucket:2 z_bucket_w:0.001 buckets:[1 2 0 1 1] "
               "n_buckets:[1 2 0 1 1]}}+{{schema:1 count:9 sum:18.4 z_bucket:1 z_bucket_w:0.001 "
               "buckets:[1 1 0 1 1] n_buckets:[1 1 0 1 1]}}x100", 15)
    got, warns, _ = values(e, "rate(h[45s])", 300)
    h = got[L()]
    assert math.isclose(float(h["count"]), 18 / 30) and math.isclose(float(h["sum"]), 2 * 18.4 / 30)
    per_bucket = 2 / 30
    counts = [float(b[3]) for b in h["buckets"]]
    assert len(counts) == 9 and all(math.isclose(c, per_bucket) for c in counts)
    assert [b[0] for b in h["buckets"]] == [1, 1, 1, 1, 3, 0, 0, 0, 0]   # negative [), zero [], positive (]
    assert warns == []
    rng = e.range("rate(h[45s])", 300, 330, 30)
    assert len(rng.data) == 1 and len(rng.data[0]["histograms"]) == 2


def test_annotations_where_prometheus_ignores_or_warns():
    e = engine(SINGLE)
    got, _, infos = values(e, "max(h)", 0)
    assert got == {} and infos == ["PromQL info: ignored histogram in max aggregation"]
    got, _, infos = values(e, "h > 1", 0)
    assert got == {} and any("incompatible sample types" in i for i in infos)
    gauge = engine("h {{count:1 sum:1 buckets:[1] counter_reset_hint:gauge}}+"
                   "{{count:1 sum:1 buckets:[1] counter_reset_hint:gauge}}x3")
    _, warns, _ = values(gauge, "rate(h[10m])", 900)
    assert warns == ['PromQL warning: this native histogram metric is not a counter: "h"']
    _, warns, _ = values(gauge, "delta(h[10m])", 900)
    assert warns == []
    _, warns, _ = values(engine(INCR), "delta(h[10m])", 3000)
    assert warns == ['PromQL warning: this native histogram metric is not a gauge: "h"']
    _, warns, _ = values(gauge, "idelta(h[10m])", 900)
    assert warns == []
    mixed = engine('h{a="1"} {{schema:0 count:1 sum:1 buckets:[1]}}\n'
                   'h{a="2"} {{schema:-53 count:1 sum:1 custom_values:[1] buckets:[1]}}')
    got, warns, _ = values(mixed, "sum(h)", 0)
    assert got == {} and any("mix of histograms with exponential and custom buckets" in w for w in warns)


def test_rate_results_are_gauge_histograms_in_the_notation():
    e = engine(INCR)
    r = e.instant("rate(h[10m])", 3000)
    from collector.query import nhmat
    (labels, m), = r.hist_series
    assert nhmat.as_nh(m, 0).test_expression() == (
        "{{count:0.0033333333333333335 sum:0.006666666666666667 counter_reset_hint:gauge offset:1 "
        "buckets:[0.0033333333333333335]}}")
    r = e.instant("h", 3000)
    (labels, m), = r.hist_series
    assert labels == {"__name__": "h"}
    # stored samples carry the hints Prometheus's TSDB gives them: not_reset after the first
    assert nhmat.as_nh(m, 0).test_expression() == "{{count:14 sum:24 counter_reset_hint:not_reset buckets:[1 12 1]}}"
    assert nhmat.as_nh(e.instant("h", 0).hist_series[0][1], 0).test_expression() == \
        "{{count:4 sum:4 buckets:[1 2 1]}}"
    neg = e.instant("-h", 3000)
    assert nhmat.as_nh(neg.hist_series[0][1], 0).hint == "gauge"        # unary minus: a gauge
    assert nhmat.as_nh(e.instant("h - h", 3000).hist_series[0][1], 0).hint == "gauge"
    assert nhmat.as_nh(e.instant("sum(h)", 3000).hist_series[0][1], 0).hint == "not_reset"


def test_floats_and_histograms_in_one_series():
    e = engine("m 1 {{count:2 sum:2 buckets:[2]}} 3 stale")
    assert values(e, "m", 0)[0] == {L(__name__="m"): 1.0}
    assert values(e, "histogram_count(m)", 300)[0] == {L(): 2.0}
    assert values(e, "m", 600)[0] == {L(__name__="m"): 3.0}
    assert values(e, "m", 900)[0] == {}                              # stale
    assert values(e, "count_over_time(m[20m])", 900)[0] == {L(): 3.0}   # (0, 15m]: hist at 5m, floats at 10m


def test_notation_round_trip_and_schema_reduction():
    h = X.parse("{{schema:2 count:3 sum:3 z_bucket:1 z_bucket_w:0.25 buckets:[1 0 0 0 1] offset:-2 "
                "counter_reset_hint:not_reset}}")
    assert X.parse(h.test_expression()).test_expression() == h.test_expression()
    low = h.to_schema(0)
    # schema 2 indexes -2 and 2 fold into schema 0 indexes 0 and 1
    assert low.pos == {0: 1.0, 1: 1.0}
    assert X.bound(1, 0) == 2.0 and X.bound(0, 0) == 1.0 and X.bound(-1, 1) == 2 ** -0.5
    wide = X.parse("{{count:2 z_bucket:1 z_bucket_w:0.5 buckets:[1]}}")          # bucket (0.5, 1]
    narrow = X.parse("{{count:2 z_bucket:1 z_bucket_w:0.1 buckets:[1] offset:-2}}")  # bucket (0.125, 0.25]
    both = wide.add(narrow)
    assert both.zero_threshold == 0.5 and both.zero_count == 3 and both.pos == {0: 1.0}


def test_histogram_equality_and_reconciliation_infos():
    e = engine('a {{schema:-53 sum:1 count:1 custom_values:[2] buckets:[1]}} '
               '{{schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]}}\n'
               'b {{schema:-53 sum:1 count:1 custom_values:[5 10] buckets:[1]}}x1')
    r = e.range("a == b", 0, 300, 300)
    assert [h[0] for h in r.data[0]["histograms"]] == [300] and r.data[0]["metric"] == {"__name__": "a"}
    r = e.range("a != b", 0, 300, 300)
    assert [h[0] for h in r.data[0]["histograms"]] == [0] and r.infos == []
    r = e.instant("a > b", 0)
    assert r.data == [] and any("incompatible sample types" in i for i in r.infos)
    r = e.instant("sum({__name__=~\"a|b\"})", 0)
    assert r.infos == ["PromQL info: mismatched custom buckets were reconciled during aggregation"]
    assert r.data[0]["histogram"][1]["count"] == "2"
    r = e.instant("a - ignoring() b", 0)
    assert r.infos == ["PromQL info: mismatched custom buckets were reconciled during subtraction"]


def test_increase_with_a_reset_in_one_bucket():
    # the count grows, but the second bucket drops: a reset, so the sample before it is added back
    e = engine("h {{schema:0 count:4 sum:5 buckets:[1 2 1]}} {{schema:0 count:5 sum:6 buckets:[1 1 3]}} "
               "{{schema:0 count:6 sum:7 buckets:[1 2 3]}}")
    r = e.instant("increase(h[15m])", 600)
    from collector.query import nhmat
    (_, m), = r.hist_series
    # last (6 observations) counted from the reset, extrapolated by 900/600
    assert nhmat.as_nh(m, 0).test_expression() == "{{count:9 sum:10.5 counter_reset_hint:gauge buckets:[1.5 3 4.5]}}"
    assert r.warnings == []


def test_nan_observations_in_quantile_and_fraction():
    e = engine('h{c="all"} {{schema:0 count:0 sum:0}} {{schema:0 count:3 sum:NaN}}\n'
               'h{c="some"} {{schema:0 count:0 sum:0}} {{schema:0 count:15 sum:NaN buckets:[12]}}', 60)
    r = e.instant("histogram_quantile(0.8, h)", 60)
    got = {d["metric"]["c"]: float(d["value"][1]) for d in r.data}
    assert math.isnan(got["all"]) and got["some"] == 1.0       # 12 of 15 in (0.5, 1]: the 0.8 rank is 1
    assert 'PromQL info: input to histogram_quantile has NaN observations, result is skewed higher ' \
           'for metric name "h"' in r.infos
    r = e.instant("histogram_quantile(0.81, h{c=\"some\"})", 60)
    assert math.isnan(float(r.data[0]["value"][1]))            # past the last bucketed observation
    assert r.infos == ['PromQL info: input to histogram_quantile has NaN observations, result is NaN '
                       'for metric name "h"']
    r = e.instant("histogram_fraction(-Inf, +Inf, h)", 60)
    got = {d["metric"]["c"]: float(d["value"][1]) for d in r.data}
    assert got == {"all": 0.0, "some": 0.8}                    # NaN observations are in no fraction
    assert r.infos and "excluded from all fractions" in r.infos[0]


def test_increase_stops_extrapolating_at_the_counters_zero_point():
    # count 15 at 0, 2490 from 1m on: 2475 more over 55 min; the range reaches back 35 min
    # further, but the count would hit zero 20 s before the first sample (15/2475 of 3300 s)
    e = engine("h {{schema:0 count:15 sum:25 buckets:[5 10]}} {{schema:0 count:2490 sum:75 buckets:[15 2475]}}x55\n"
               "c 15 2490x55", 60)
    f = (3300 + 3300 * 15 / 2475) / 3300
    got = values(e, "histogram_count(increase(h[90m]))", 3300)[0]
    assert same(got, {L(): 2475 * f}) and math.isclose(2475 * f, 2490)
    assert same(values(e, "histogram_sum(increase(h[90m]))", 3300)[0], {L(): 50 * f})
    assert same(values(e, "increase(c[90m])", 3300)[0], {L(): 2490.0})   # the float counter agrees
