"""Engine behaviour beyond single values: step grid, staleness, lookback,
offset/@, UTF-8 names, limits, errors, reading each selector once."""
from __future__ import annotations

import math

import pytest

from collector.query.engine import Engine
from collector.query.errors import BadData, QueryError, Timeout, Unprocessable
from collector.query.seriesnotation import load
from helpers import HistBuilder

SERIES = [
    ('req_total{job="a"}', "0+60x30"),
    ('req_total{job="b"}', "0+30x10 _x5 stale"),
    ('{"http.server.active", host="h1"}', "1 2 3 4 5"),
    ('temp{room="x"}', "20 stale 22"),
]


@pytest.fixture
def engine():
    return Engine(load(SERIES, 60))


def test_range_query_grid_and_rate(engine):
    r = engine.range("rate(req_total[2m])", 300, 900, 60).to_json()
    a = next(s for s in r["result"] if s["metric"]["job"] == "a")
    assert [t for t, _ in a["values"]] == list(range(300, 901, 60))
    assert all(float(v) == pytest.approx(1.0) for _, v in a["values"])
    b = next(s for s in r["result"] if s["metric"]["job"] == "b")
    assert max(t for t, _ in b["values"]) <= 600 + 120


def test_stale_marker_hides_series(engine):
    assert engine.instant_vector('temp', 30) == [({"__name__": "temp", "room": "x"}, 20.0)]
    assert engine.instant_vector('temp', 90) == []        # stale at 60
    assert engine.instant_vector('temp', 150)[0][1] == 22.0


def test_lookback_and_lookback_param(engine):
    assert engine.instant_vector('{"http.server.active"}', 240 + 299)[0][1] == 5.0
    assert engine.instant_vector('{"http.server.active"}', 240 + 300) == []
    assert engine.instant('{"http.server.active"}', 300, lookback_s=30).to_json()["result"] == []


def test_offset_and_at(engine):
    (_, v), = engine.instant_vector('req_total{job="a"} offset 5m', 600)
    assert v == 300 * 1.0
    (_, v), = engine.instant_vector('req_total{job="a"} @ 120', 600)
    assert v == 120
    r = engine.range('req_total{job="a"} @ end()', 0, 600, 300).to_json()
    assert [float(v) for _, v in r["result"][0]["values"]] == [600.0] * 3


def test_utf8_names_and_matchers(engine):
    got = engine.instant_vector('{"http.server.active", host=~"h.*"}', 120)
    assert got[0][0]["__name__"] == "http.server.active"
    assert engine.instant_vector('{"http.server.active", host=~"h"}', 120) == []  # anchored
    assert len(engine.instant_vector('{__name__=~"req_.*", job!~"b"}', 120)) == 1


def test_scalar_string_results(engine):
    assert engine.instant("1+1", 10).to_json() == {"resultType": "scalar", "result": [10, "2"]}
    assert engine.instant('"hi"', 10).to_json() == {"resultType": "string", "result": [10, "hi"]}
    r = engine.range("time()", 0, 120, 60).to_json()
    assert r["result"] == [{"metric": {}, "values": [[0, "0"], [60, "60"], [120, "120"]]}]
    assert engine.instant_vector("2 * 3", 0) == [({}, 6.0)]


def test_matrix_result_for_instant_range_selector(engine):
    r = engine.instant('req_total{job="a"}[2m]', 120).to_json()
    assert r["resultType"] == "matrix"
    assert r["result"][0]["values"] == [[60, "60"], [120, "120"]]  # (t-2m, t]


def test_errors(engine):
    for q, err in (("sum(", BadData), ("foo(bar)", BadData), ("step()", BadData),
                   ("req_total[5m]", None)):
        if err is None:
            engine.instant(q, 10)
            continue
        with pytest.raises(err):
            engine.instant(q, 10)
    with pytest.raises(BadData):
        engine.range('"x"', 0, 10, 1)
    with pytest.raises(BadData):
        engine.range("up", 0, 10, 0)
    with pytest.raises(BadData):
        engine.instant_vector('req_total[5m]', 10)
    with pytest.raises(Unprocessable):  # many-to-many
        engine.instant("req_total + ignoring(job) req_total", 120)


def test_limits_and_timeout():
    src = load(SERIES, 60)
    with pytest.raises(Unprocessable) as e:
        Engine(src, max_samples=10).range("req_total", 0, 1800, 1)
    assert e.value.status == 422 and e.value.error_type == "execution"
    ticks = iter(range(0, 1000, 100))
    with pytest.raises(Timeout) as t:
        Engine(src, timeout_s=50, clock=lambda: next(ticks)).instant("sum(rate(req_total[5m]))", 300)
    assert t.value.status == 503
    assert issubclass(Timeout, QueryError)


def test_each_selector_is_read_once_per_range_query():
    src = load(SERIES, 60)
    e = Engine(src)
    e.range("sum(rate(req_total[5m])) / sum(req_total)", 0, 1800, 15)
    assert src.reads == 2


def test_histogram_selector_read_once():
    b = HistBuilder()
    for s in range(0, 100, 10):
        b.add_hdr("lat_seconds", {"svc": "a"}, s, [0.1, 0.2])
    src = b.source()
    Engine(src).range("histogram_quantile(0.9, sum(rate(lat_seconds[1m])))", 0, 100, 10)
    assert src.reads == 1


def test_instant_vector_helper_rejects_strings(engine):
    with pytest.raises(BadData, match="not an instant vector"):
        engine.instant_vector('"x"', 0)


def test_subquery_and_absent_over_time_range(engine):
    r = engine.range('absent_over_time(req_total{job="b"}[2m])', 0, 1200, 300).to_json()
    assert [t for t, _ in r["result"][0]["values"]] == [900, 1200]
    (_, v), = engine.instant_vector('max_over_time(deriv(req_total{job="a"}[2m])[5m:30s])', 600)
    assert v == pytest.approx(1.0)


def test_nan_values_are_values_not_stale():
    e = Engine(load([("g", "1 NaN 3")], 60))
    (_, v), = e.instant_vector("g", 60)
    assert math.isnan(v)
