"""Functions, selectors and literals as Prometheus 3 answers them (cases written
here, values worked out by hand)."""
from __future__ import annotations

import math
import time

import pytest

from collector.query.errors import BadData
from p3 import L, engine, instant, same

LIN = "m 0 1 2 3 4"   # samples at 0, 300, ..., 1200 s


CASES = [
    # predict_linear projects from the evaluation time, also under @ and offset
    (LIN, "predict_linear(m[20m] @ 600, 0)", 1200, {L(): 4.0}),
    (LIN, "predict_linear(m[20m] offset 10m, 0)", 1200, {L(): 4.0}),
    (LIN, "predict_linear(m[20m], 600)", 1200, {L(): 6.0}),
    # absent(): only a label named once, by an equality matcher, is kept
    (LIN, 'absent(x{job="a", job=~"b", foo="bar"})', 0, {L(foo="bar"): 1.0}),
    (LIN, 'absent(x{job="a", job="b"})', 0, {L(): 1.0}),
    (LIN, 'absent({job=~"a", env="p", __name__="x"})', 0, {L(env="p"): 1.0}),
    (LIN, 'absent_over_time(x{job="a"}[5m])', 0, {L(job="a"): 1.0}),
    (LIN, "absent(m)", 0, {}),
    # clamp: NaN bounds give NaN, min > max gives nothing
    ("m 1", "clamp(m, 0, NaN)", 0, {L(): math.nan}),
    ("m 1", "clamp(m, NaN, 5)", 0, {L(): math.nan}),
    ("m 1", "clamp(m, 5, 0)", 0, {}),
    ("m 7", "clamp(m, 0, 5)", 0, {L(): 5.0}),
    ("m 1", "clamp_min(m, NaN)", 0, {L(): math.nan}),
    ("m NaN", "clamp_max(m, 3)", 0, {L(): math.nan}),
    # quantiles sort NaN first and interpolate with it
    ('d{p="a"} NaN\nd{p="b"} 0\nd{p="c"} 0.5\nd{p="d"} 1', "quantile(0.8, d)", 0, {L(): 0.7}),
    ('d{p="a"} NaN\nd{p="b"} 0\nd{p="c"} 0.5\nd{p="d"} 1', "quantile(0.2, d)", 0, {L(): math.nan}),
    ("m NaN 0 0.5 1", "quantile_over_time(0.8, m[30m])", 900, {L(): 0.7}),
    ("m 1 2 3", "quantile_over_time(1.5, m[30m])", 600, {L(): math.inf}),
    # parenthesised range vectors
    ("m 0 1 1 2", "changes((m[50m]))", 900, {L(): 2.0}),
    ("m 0 10 20", "rate(((m[10m])))", 600, {L(): 20 / 600}),
    # number literals
    ("m 1", "0x1F + 12.34e6", 0, {frozenset(): 31 + 12.34e6}),
    ("m 1", "1h + 1m + 1s", 0, {frozenset(): 3661.0}),
    ("m 1", "-Inf", 0, {frozenset(): -math.inf}),
    ("m 1", "NaN", 0, {frozenset(): math.nan}),
    ("m 1", ".5e1 + 0X0a", 0, {frozenset(): 15.0}),
    # double_exponential_smoothing (Holt's linear method), worked by hand
    ("m 0 5 1 7 3", "double_exponential_smoothing(m[30m], 0.5, 0.5)", 1200, {L(): 6.53125}),
    ("m 0+10x20", "double_exponential_smoothing(m[1h], 0.1, 0.9)", 6000, {L(): 200.0}),
    # ts_of_*_over_time: the time of the latest extreme
    ("m 1 3 3 2", "ts_of_max_over_time(m[30m])", 900, {L(): 600.0}),
    ("m 1 3 3 2", "ts_of_min_over_time(m[30m])", 900, {L(): 0.0}),
    ("m 1 3 3 2", "ts_of_first_over_time(m[10m])", 900, {L(): 600.0}),
    # RE2 semantics: flags inside groups, anchoring, character classes, . matches newline
    ('m{g="prometheus"} 1\nm{g="PROM"} 2\nm{g="xPROM"} 3', 'm{g=~"((?i)PRO).*"}', 0,
     {L(__name__="m", g="prometheus"): 1.0, L(__name__="m", g="PROM"): 2.0}),
    ('m{g="a1"} 1\nm{g="b"} 2', 'm{g=~"[[:alpha:]][[:digit:]]"}', 0, {L(__name__="m", g="a1"): 1.0}),
    ('m{g="a1"} 1\nm{g="b"} 2', 'm{g=~"\\\\pL"}', 0, {L(__name__="m", g="b"): 2.0}),
    ('m{g="x"} 1', 'label_replace(m, "dst", "$1-${1}-$$-$1x", "g", "(.)")', 0,
     {L(__name__="m", g="x", dst="x-x-$-"): 1.0}),
]


@pytest.mark.parametrize("data,expr,t,want", CASES, ids=[c[1] for c in CASES])
def test_case(data, expr, t, want):
    got = instant(engine(data), expr, t)
    assert same(got, want), (got, want)


def test_catastrophic_regex_is_linear():
    e = engine(f'm{{g="{"a" * 30000}c"}} 1')
    t0 = time.perf_counter()
    assert instant(e, 'm{g=~"(a+)+b"}', 0) == {}
    assert instant(e, 'count(m{g!~"(a|aa)*b"})', 0) == {L(): 1.0}
    assert time.perf_counter() - t0 < 2.0   # backtracking would take longer than the universe


@pytest.mark.parametrize("expr,message", [
    ("holt_winters(m[5m], 0.5, 0.5)", 'unknown function with name "holt_winters"'),
    ("double_exponential_smoothing(m[5m], 1, 0.5)", "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"),
    ("double_exponential_smoothing(m[5m], 0.5, 0)", "invalid trend factor. Expected: 0 < tf < 1, got: 0.000000"),
    ('m{g=~"(a)\\\\1"}', "illegal regex"),   # no backreferences in RE2
    ("m + fill(0) 1", "fill modifiers are only allowed between two instant vectors"),
    ("step()", "duration expression"),
])
def test_refusals_say_what(expr, message):
    with pytest.raises(BadData) as e:
        engine("m 1").instant(expr, 0)
    assert message in str(e.value)
