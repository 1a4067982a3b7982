import math

import pytest

from collector.query.seriesnotation import NotationError, format_value, load, parse_series, parse_values
from collector.query.stale import is_stale

import numpy as np


def test_expansions():
    v = parse_values("0+10x3 _ stale 1x2 _x2 -1-1x2 1e3 Inf")
    assert v[:4] == [0, 10, 20, 30] and v[4] is None and is_stale(np.array([v[5]]))[0]
    assert v[6:9] == [1, 1, 1] and v[9:11] == [None, None] and v[11:14] == [-1, -2, -3]
    assert v[14] == 1000 and math.isinf(v[15])


def test_series_and_errors():
    assert parse_series('up{job="a"}') == ("up", {"job": "a"})
    assert parse_series('{"a.b", x="1"}') == ("a.b", {"x": "1"})
    for bad in ('up{job=~"a"}', "sum(up)", "{x=\"1\"}"):
        with pytest.raises(NotationError):
            parse_series(bad)
    with pytest.raises(NotationError):
        parse_values("1 foo")
    for bad in ("{{schema:0 sum:1", "{{schema:9 count:1}}", "{{count:1 foo:2}}", "{{count:1 count:2}}",
                "{{buckets:[1 2}}", "{{count:1}}+{{count:1}}", "{{schema:1 count:1}}+{{schema:0 count:1}}x2",
                "{{counter_reset_hint:maybe}}", "{{custom_values:[1 2] count:1}}"):
        with pytest.raises(NotationError):
            parse_values(bad)


def test_load_and_format():
    src = load([("a", "1 _ 3")], 15, start_s=100)
    assert list(src.samples.ts) == [100 * 10**9, 130 * 10**9]
    assert format_value(1e-7) == "0.0000001" and format_value(2.0) == "2" and format_value(float("nan")) == "NaN"
    assert format_value(float("-inf")) == "-Inf"
