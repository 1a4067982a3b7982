"""first_over_time, sort_by_label(_desc), histogram_stddev/_stdvar."""
import numpy as np
import pytest

from collector.query.engine import Engine
from collector.query.seriesnotation import load
from helpers import HistBuilder

M = "traces_span_metrics_duration_seconds"


def test_first_over_time_keeps_the_name_and_takes_the_oldest_sample_in_the_window():
    e = Engine(load([('temp{room="a"}', "1 2 3 4 5")], 60))
    r = e.instant("first_over_time(temp[2m])", 240).to_json()["result"]
    assert r == [{"metric": {"__name__": "temp", "room": "a"}, "value": [240, "4"]}]  # window (120, 240]: 180, 240


def test_sort_by_label_orders_by_the_named_labels_then_all():
    e = Engine(load([('x{a="2",b="1"}', "1"), ('x{a="1",b="2"}', "2"), ('x{a="1",b="1"}', "3")], 60))
    asc = [(s["metric"]["a"], s["metric"]["b"]) for s in e.instant('sort_by_label(x, "a")', 0).to_json()["result"]]
    assert asc == [("1", "1"), ("1", "2"), ("2", "1")]
    desc = [(s["metric"]["a"], s["metric"]["b"])
            for s in e.instant('sort_by_label_desc(x, "b", "a")', 0).to_json()["result"]]
    assert desc == [("1", "2"), ("2", "1"), ("1", "1")]


def test_histogram_stddev_matches_the_observations_within_hdr_precision():
    rng = np.random.default_rng(3)
    d = rng.lognormal(-2, 0.5, 5000)
    b = HistBuilder()
    b.add_hdr(M, {"service_name": "a"}, 0, d)
    e = Engine(b.source())
    (_, sd), = e.instant_vector(f"histogram_stddev(sum(rate({M}[1m])))", 30)
    (_, var), = e.instant_vector(f"histogram_stdvar(sum(rate({M}[1m])))", 30)
    assert sd == pytest.approx(np.std(d), rel=0.01)
    assert var == pytest.approx(sd ** 2)


def test_histogram_stddev_of_explicit_buckets_uses_bucket_middles():
    b = HistBuilder()
    b.add_custom("rpc_seconds", {"svc": "c"}, 0, (1.0, 3.0), [2, 2, 0], 6.0)  # two at 0.5, two at 2.0
    e = Engine(b.source())
    (_, sd), = e.instant_vector("histogram_stddev(rate(rpc_seconds[1m]))", 30)
    assert sd == pytest.approx(0.75)
