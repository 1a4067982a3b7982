"""What used to differ from Prometheus 3 around histograms and annotations:
changes/resets/delta/irate/idelta of stored histograms, rate over histogram
subqueries, limitk in series order over floats and histograms, classic buckets
of two metric names, and the infos/warnings Prometheus gives (cases written here)."""
from __future__ import annotations

import math

import pytest

from collector.query.engine import Engine
from collector.query.errors import Unprocessable
from helpers import HistBuilder
from p3 import L, engine, instant, same

NOW = 10_000.0


@pytest.fixture
def stored():
    """One HDR series: 10 s slots from t=0; slot k holds k+1 observations of 0.1 s,
    except slot 3, which is empty, and slot 6 holds 2 s observations."""
    b = HistBuilder()
    for k in range(9):
        if k == 3:
            continue
        d = [2.0] * (k + 1) if k == 6 else [0.1] * (k + 1)
        b.add_hdr("lat_seconds", {"svc": "a"}, k * 10, d)
    return Engine(b.source(), clock=lambda: NOW)


def hval(e, expr, t):
    return {frozenset(d["metric"].items()): d.get("histogram", d.get("value"))[1] for d in e.instant(expr, t).data}


def test_changes_and_resets_of_stored_histograms(stored):
    # a stored histogram is a cumulative histogram sampled at each slot end (10, 20, 30, 50, ...):
    # it changes at every slot end with observations, and never resets
    got = instant(stored, "changes(lat_seconds[90s])", 90)
    assert got == {L(svc="a"): 7.0}          # samples at 10,20,30,50,60,70,80,90: 8 samples, 7 changes
    assert instant(stored, "resets(lat_seconds[90s])", 90) == {L(svc="a"): 0.0}


def test_delta_irate_idelta_of_stored_histograms(stored):
    # irate: the last two samples (slot ends 80 and 90): slot 8's 9 observations over 10 s
    got = hval(stored, "irate(lat_seconds[30s])", 90)
    assert math.isclose(float(got[L(svc="a")]["count"]), 0.9)
    r = stored.instant("idelta(lat_seconds[30s])", 90)
    assert math.isclose(float(r.data[0]["histogram"][1]["count"]), 9.0)
    # stored histograms are counters: idelta warns as Prometheus does for counter histograms
    assert r.warnings == ['PromQL warning: this native histogram metric is not a gauge: "lat_seconds"']
    # delta over (60, 90]: samples at 70, 80, 90 → 17 observations over 20 s, extrapolated to 30 s
    got = hval(stored, "histogram_count(delta(lat_seconds[30s]))", 90)
    assert math.isclose(float(got[L(svc="a")]), 17 * 30 / 20)


def test_rate_over_a_histogram_subquery(stored):
    # the subquery samples the cumulative histogram every 10 s; rate extrapolates as Prometheus
    # over (40, 90]: samples at 50..90 (5 samples, 40 s apart in total), count 36 - 6 = 30 observations
    got = instant(stored, "histogram_count(rate(lat_seconds[50s:10s]))", 90)
    assert math.isclose(got[L(svc="a")], 30 / 40 * 50 / 50)
    got = instant(stored, "histogram_count(increase(lat_seconds[50s:10s]))", 90)
    assert math.isclose(got[L(svc="a")], 30 * 50 / 40)
    # the quantile of a rate over a subquery sees the 2 s observations of slot 6
    q = instant(stored, "histogram_quantile(0.99, rate(lat_seconds[50s:10s]))", 90)[L(svc="a")]
    assert 1.9 < q < 2.1


def test_limitk_takes_the_first_series_in_series_order_whatever_the_kind():
    e = engine('m{i="1"} {{count:1 sum:1 buckets:[1]}}\nm{i="2"} 5\nm{i="3"} 1\nm{i="4"} {{count:2 sum:2 buckets:[2]}}')
    r = e.instant("limitk(2, m)", 0)
    got = sorted(d["metric"]["i"] for d in r.data)
    assert got == ["1", "2"]                  # a histogram and a float, not the two floats
    r = e.instant("limitk(1, m{i=~\"2|3\"})", 0)
    assert [d["metric"]["i"] for d in r.data] == ["2"]    # series order, not the lower value


def test_classic_buckets_of_two_metric_names_are_two_histograms():
    e = engine('a_bucket{le="1"} 1\na_bucket{le="+Inf"} 2\nb_bucket{le="1"} 3\nb_bucket{le="+Inf"} 4')
    with pytest.raises(Unprocessable, match="same labelset"):
        e.instant("histogram_quantile(0.5, {__name__=~\"a_bucket|b_bucket\"})", 0)
    assert same(instant(e, "histogram_quantile(0.5, a_bucket)", 0), {L(): 1.0})


def test_annotations_prometheus_gives():
    e = engine('gauge_thing 1 2 3\nreq_total 1 2 3\nx_bucket{le="1"} 1\nx_bucket{le="oops"} 1\n'
               'x_bucket{le="+Inf"} 2')
    r = e.instant("rate(gauge_thing[15m])", 600)
    assert r.infos == ['PromQL info: metric might not be a counter, name does not end in '
                       '_total/_sum/_count/_bucket: "gauge_thing"']
    assert e.instant("rate(req_total[15m])", 600).infos == []
    r = e.instant("histogram_quantile(0.5, x_bucket)", 0)
    assert r.warnings == ['PromQL warning: bucket label "le" is missing or has a malformed value of "oops" '
                          'for metric name "x_bucket"']
    assert same({frozenset(d["metric"].items()): float(d["value"][1]) for d in r.data}, {L(): 1.0})
