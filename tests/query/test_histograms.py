"""Histogram (delta-backed) semantics: exact rate/increase over slot windows,
exact merging, quantiles against hdr.quantiles, custom buckets, virtual series."""
from __future__ import annotations

import math

import numpy as np
import pytest

from collector.aggregate import hdr
from collector.query.engine import Engine
from collector.query.errors import BadData
from helpers import HistBuilder

M = "traces_span_metrics_duration_seconds"


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    b = HistBuilder()
    raw = {}
    for svc, lo, hi in (("a", 0.01, 0.05), ("b", 0.5, 2.0)):
        for route in ("/x", "/y"):
            for start in range(0, 600, 10):
                d = rng.uniform(lo, hi, 5 + start % 7)
                b.add_hdr(M, {"service_name": svc, "http_route": route}, start, d)
                raw.setdefault(svc, []).append((start, d))
    b.add_custom("rpc_seconds", {"svc": "c"}, 0, (0.1, 0.5, 1.0), [1, 2, 3, 4], 10.0)
    b.add_custom("rpc_seconds", {"svc": "c"}, 10, (0.1, 0.5, 1.0), [1, 2, 3, 0], 5.0)
    b.add_float("plain_gauge", {"x": "1"}, "gauge", [(0, 1.0), (300, 2.0)])
    return b, raw


def _window(raw, svc, t, w):
    return np.concatenate([d for start, d in raw[svc] if t - w < start + 10 <= t])


def test_rate_is_exact_and_quantile_matches_hdr(data):
    b, raw = data
    e = Engine(b.source())
    got = dict((l["service_name"], v) for l, v in e.instant_vector(
        f"sum by (service_name) (rate({M}_count[5m]))", 600))
    for svc in ("a", "b"):
        assert got[svc] == pytest.approx(len(_window(raw, svc, 600, 300)) / 300)
    q = dict((l["service_name"], v) for l, v in e.instant_vector(
        f"histogram_quantile(0.95, sum by (service_name) (rate({M}[5m])))", 600))
    for svc in ("a", "b"):
        d = _window(raw, svc, 600, 300)
        idx, _, _ = hdr.index_of_seconds(d)
        u, c = hdr.merge(idx, np.ones(len(idx), np.int64))
        assert q[svc] == pytest.approx(hdr.quantiles(u, c, [0.95])[0])
        assert abs(q[svc] - np.quantile(d, 0.95)) / np.quantile(d, 0.95) < 0.02


def test_slot_belongs_to_window_by_its_end(data):
    b, raw = data
    e = Engine(b.source())
    (_, v), = e.instant_vector(f'sum(increase({M}_count{{service_name="a"}}[10s]))', 600)
    assert v == len(_window(raw, "a", 600, 10))  # only the slot [590, 600)
    assert e.instant_vector(f'sum(increase({M}_count{{service_name="a"}}[10s]))', 611) == []


def test_calls_total_and_sum(data):
    b, raw = data
    e = Engine(b.source())
    calls = dict((l["service_name"], v) for l, v in e.instant_vector(
        "sum by (service_name) (increase(traces_span_metrics_calls_total[1m]))", 600))
    assert calls["a"] == len(_window(raw, "a", 600, 60))
    (_, s), = e.instant_vector(f'sum(increase({M}_sum{{service_name="b"}}[1m]))', 600)
    assert s == pytest.approx(_window(raw, "b", 600, 60).sum())
    avg = e.instant_vector(f'histogram_avg(sum(rate({M}{{service_name="b"}}[1m])))', 600)[0][1]
    assert avg == pytest.approx(_window(raw, "b", 600, 60).mean())


def test_instant_selector_is_cumulative(data):
    b, raw = data
    e = Engine(b.source())
    total = sum(len(d) for _, d in raw["a"])
    vals = e.instant_vector(f'sum({M}_count{{service_name="a"}})', 600)
    assert vals[0][1] == total
    assert e.instant_vector(f'{M}_count', 600 + 301) == []  # beyond the lookback: gone
    r = e.instant(f'{M}{{service_name="a",http_route="/x"}}', 600).to_json()
    h = r["result"][0]["histogram"][1]
    assert float(h["count"]) == sum(len(d) for _, d in raw["a"]) / 2
    assert all(x[0] == 1 for x in h["buckets"])


def test_range_query_histograms_field(data):
    b, _ = data
    e = Engine(b.source())
    r = e.range(f"sum by (service_name) (rate({M}[1m]))", 60, 600, 60).to_json()
    assert r["resultType"] == "matrix"
    assert {s["metric"]["service_name"] for s in r["result"]} == {"a", "b"}
    assert len(r["result"][0]["histograms"]) == 10
    q = e.range(f"histogram_quantile(0.5, sum by (service_name) (rate({M}[1m])))", 60, 600, 60).to_json()
    vals = [float(v) for _, v in q["result"][0]["values"]]
    assert all(0.01 <= v <= 0.05 for v in vals)


def test_custom_buckets_classic_interpolation(data):
    b, _ = data
    e = Engine(b.source())
    # slot 1: counts 1,2,3,4 in (0,.1],(.1,.5],(.5,1],(1,+Inf]; rank 0.25*10=2.5 → (.1,.5] at 1.5/2
    (_, v), = e.instant_vector("histogram_quantile(0.25, increase(rpc_seconds[10s]))", 10)
    assert v == pytest.approx(0.1 + 0.4 * 0.75)
    (_, v), = e.instant_vector("histogram_quantile(0.99, increase(rpc_seconds[10s]))", 10)
    assert v == 1.0  # in the +Inf bucket: the highest finite bound
    (_, f), = e.instant_vector("histogram_fraction(0, 0.5, increase(rpc_seconds[20s]))", 20)
    assert f == pytest.approx(6 / 16)
    (_, c), = e.instant_vector("histogram_count(increase(rpc_seconds[20s]))", 20)
    assert c == 16


def test_hist_scalar_multiplication_and_avg(data):
    b, _ = data
    e = Engine(b.source())
    (_, a), = e.instant_vector(f'histogram_count(sum(rate({M}{{service_name="a"}}[1m])))', 600)
    (_, a2), = e.instant_vector(f'histogram_count(sum(rate({M}{{service_name="a"}}[1m])) * 2)', 600)
    (_, av), = e.instant_vector(f'histogram_count(avg(rate({M}{{service_name="a"}}[1m])))', 600)
    assert a2 == pytest.approx(2 * a)
    assert av == pytest.approx(a / 2)


def test_float_only_operations_ignore_histograms_as_prometheus(data):
    """Prometheus 3 answers these without the histogram samples (with an info
    annotation where it gives one), not with an error."""
    b, _ = data
    e = Engine(b.source())
    for q, info in ((f"max_over_time({M}[5m])", None), (f"max(rate({M}[5m]))", "ignored histogram in max"),
                    (f"abs(rate({M}[5m]))", None),
                    (f"rate({M}[5m]) > 0", 'incompatible sample types encountered for binary operator ">"')):
        r = e.instant(q, 600)
        assert r.data == [], q
        assert (info is None and not r.infos) or any(info in x for x in r.infos), (q, r.infos)
    r = e.instant(f"histogram_count(rate({M}[5m]) + rate({M}[5m]))", 600)
    r1 = e.instant(f"histogram_count(rate({M}[5m]))", 600)
    assert [float(x["value"][1]) for x in r.data] == [2 * float(x["value"][1]) for x in r1.data]


def test_quantile_edges(data):
    b, _ = data
    e = Engine(b.source())
    vals = [v for _, v in e.instant_vector(f"histogram_quantile(1.5, sum(rate({M}[1m])))", 600)]
    assert vals == [math.inf]
    assert math.isnan(e.instant_vector(f"histogram_quantile(0.5, sum(rate({M}[1m])) * 0)", 600)[0][1])


def test_open_slot_is_visible_to_a_query_at_now():
    b = HistBuilder()
    b.add_hdr(M, {"service_name": "a"}, 1000, [0.2] * 10 + [0.9] * 10)  # slot [1000, 1010) still open
    e = Engine(b.source(), clock=lambda: 1003.2)
    assert e.instant_vector("sum(traces_span_metrics_calls_total)", 1003.1) == [({}, 20.0)]
    (_, q), = e.instant_vector(f"histogram_quantile(0.95, sum(rate({M}[1m])))", 1003.1)
    assert q == pytest.approx(0.9, rel=0.01)
    assert e.instant_vector("sum(traces_span_metrics_calls_total)", 999) == []
