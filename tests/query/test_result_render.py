"""Range results rendered in bulk (issue 17) are the JSON of the list form, value
by value as Prometheus prints them."""
from __future__ import annotations

import json

import numpy as np

from collector.query.result import build_result, format_values
from collector.query.seriesnotation import format_value
from collector.query.values import Vec

NS = 1_000_000_000


def test_format_values_equals_format_value():
    rnd = np.random.default_rng(0)
    vals = np.concatenate([rnd.lognormal(0, 6, 5000), -rnd.lognormal(0, 3, 500),
                           [0.0, -0.0, 1.0, 10.0, 1e15, 1e16, 1e21, 1e-5, 1e-4, 0.1 + 0.2, 5e-324, 1.5e308]])
    assert format_values(vals) == [format_value(v) for v in vals.tolist()]
    odd = np.array([np.nan, np.inf, -np.inf, 2.0])
    assert format_values(odd) == ["NaN", "+Inf", "-Inf", "2"]


def test_matrix_pieces_are_the_json_of_data():
    rnd = np.random.default_rng(1)
    T = 1_700_000_000 * NS + np.arange(50, dtype=np.int64) * 15_500_000_000
    vals = rnd.lognormal(0, 4, (4, 50))
    vals[1, 3] = np.nan
    vals[2, 7] = 1e22
    vals[3, :] = np.round(vals[3, :])
    mask = rnd.random((4, 50)) < 0.8
    mask[0, :] = False
    labels = [{"a": str(i), "é": "ü"} for i in range(4)]
    res = build_result(Vec(labels, vals, mask), T, instant=False)
    text = "".join(res.json_pieces())
    assert json.loads(text) == res.to_json()
    assert text == json.dumps(res.to_json(), ensure_ascii=False, separators=(",", ":"))
    assert len(res.data) == 3    # the all-absent series is left out
