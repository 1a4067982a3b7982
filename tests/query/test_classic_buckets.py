"""Classic ``X_bucket{le}`` series of every histogram (collector/query/classic.py):
HDR histograms at the configured bounds (each HDR bucket counted whole on the
side of its middle), explicit-bucket histograms at their own bounds; classic
``histogram_quantile`` over them agrees with the native form to the classic
buckets' resolution, and ``le="+Inf"`` is ``_count``."""
import json
import math
import shutil
import subprocess

import numpy as np
import pytest

from collector.aggregate import hdr
from collector.query import classic
from collector.query.engine import Engine
from helpers import HistBuilder

M = "traces_span_metrics_duration_seconds"
T = 1_000_000.0


def _engine(b: HistBuilder, **kw) -> Engine:
    return Engine(b.source(), clock=lambda: T + 3600, **kw)


def _vector(e: Engine, expr: str, t: float = T + 300) -> dict:
    return {tuple(sorted(labels.items())): v for labels, v in e.instant_vector(expr, t)}


def _durations(n=5000, seed=3):
    return np.random.default_rng(seed).lognormal(np.log(0.08), 0.9, n)


def test_hdr_histograms_answer_as_classic_buckets_at_the_spanmetrics_bounds():
    b = HistBuilder()
    x = _durations()
    for i, part in enumerate(np.array_split(x, 10)):
        b.add_hdr(M, {"service_name": "checkout"}, T + 10 * i, part)
    e = _engine(b)
    got = {dict(k)["le"]: v for k, v in _vector(e, f"{M}_bucket").items()}
    assert sorted(got) == sorted([classic.format_le(v) for v in classic.DEFAULT_BOUNDS] + ["+Inf"])
    assert got["0.002"] <= got["0.004"] <= got["1.0"] <= got["15.0"] <= got["+Inf"] == len(x)
    assert set(got) >= {"0.002", "0.01", "1.0", "1.4", "15.0", "+Inf"}
    # each bound: the observations whose HDR bucket's middle is at most le (exact from the counts)
    mids = hdr.mid_seconds(hdr.index_of_seconds(x)[0])
    for le, v in got.items():
        assert v == int((mids <= float(le)).sum()), le
        # and within an HDR bucket of the true count
        assert abs(v - (x <= float(le)).sum()) <= ((x > float(le) * 0.99) & (x <= float(le) * 1.01)).sum()
    # +Inf is the count, as in Prometheus
    assert _vector(e, f"{M}_count")[(("__name__", f"{M}_count"), ("service_name", "checkout"))] == len(x)


def test_classic_quantile_works_unchanged_and_agrees_with_the_native_form():
    b = HistBuilder()
    x = _durations(20_000)
    for i, part in enumerate(np.array_split(x, 30)):
        b.add_hdr(M, {"service_name": "checkout", "http_route": "/pay"}, T + 10 * i, part)
    e = _engine(b)
    classic_q = _vector(e, f"histogram_quantile(0.95, sum by (le) (rate({M}_bucket[5m])))")
    native_q = _vector(e, f"histogram_quantile(0.95, sum(rate({M}[5m])))")
    (cq,), (nq,) = classic_q.values(), native_q.values()
    exact = float(np.quantile(x, 0.95))
    assert nq == pytest.approx(exact, rel=0.01)
    # the classic estimate lies in the classic bucket holding the true p95
    bounds = (0,) + classic.DEFAULT_BOUNDS
    j = int(np.searchsorted(bounds, exact))
    assert bounds[j - 1] <= cq <= bounds[j]
    # rate of a bucket equals the rate of _count for le=+Inf
    r = _vector(e, f'sum(rate({M}_bucket{{le="+Inf"}}[5m]))')
    c = _vector(e, f"sum(rate({M}_count[5m]))")
    assert list(r.values()) == pytest.approx(list(c.values()))


def test_le_matchers_and_configured_bounds():
    b = HistBuilder()
    b.add_hdr(M, {"service_name": "a"}, T, [0.003, 0.2, 0.7, 3.0])
    e = _engine(b, classic_buckets=(0.25, 1.0))
    assert sorted(dict(k)["le"] for k in _vector(e, f"{M}_bucket")) == ["+Inf", "0.25", "1.0"]
    assert list(_vector(e, f'{M}_bucket{{le="0.25"}}').values()) == [2]
    assert sorted(_vector(e, f'{M}_bucket{{le=~"0.25|1.0"}}').values()) == [2, 3]
    assert list(_vector(e, f'{M}_bucket{{le!="+Inf", le!="1.0"}}').values()) == [2]
    assert _vector(e, f'{M}_bucket{{le="0.5"}}') == {}
    # a regular expression on the name finds them too; other names do not
    assert len(_vector(e, '{__name__=~"traces_.*_bucket", service_name="a"}')) == 3
    assert _vector(e, f'{M}_bucket{{service_name="b"}}') == {}
    assert _vector(e, "nothing_bucket") == {}


def test_explicit_bucket_histograms_answer_at_their_own_bounds():
    b = HistBuilder()
    bounds = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
    b.add_custom("http_server_request_duration_seconds", {"job": "shop"}, T, bounds,
                 [1, 2, 3, 4, 5, 6, 7, 8, 9], 12.5)
    b.add_custom("http_server_request_duration_seconds", {"job": "shop"}, T + 10, bounds,
                 [0, 0, 0, 0, 0, 0, 0, 0, 2], 7.0)
    e = _engine(b)
    got = {dict(k)["le"]: v for k, v in _vector(e, "http_server_request_duration_seconds_bucket").items()}
    assert got == {"0.005": 1, "0.01": 3, "0.025": 6, "0.05": 10, "0.1": 15, "0.25": 21, "0.5": 28, "1.0": 36,
                   "+Inf": 47}
    assert list(_vector(e, 'http_server_request_duration_seconds_bucket{le="0.1"}').values()) == [15]
    q = _vector(e, "histogram_quantile(0.5, sum by (le) (rate(http_server_request_duration_seconds_bucket[5m])))")
    native = _vector(e, "histogram_quantile(0.5, sum(rate(http_server_request_duration_seconds[5m])))")
    assert list(q.values()) == pytest.approx(list(native.values()))


def test_format_le_is_prometheus_3s():
    assert [classic.format_le(x) for x in (0.002, 1.0, 1.4, 15.0, math.inf, 1e-05)] == \
        ["0.002", "1.0", "1.4", "15.0", "+Inf", "1e-05"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
@pytest.mark.parametrize("expr", [
    f"histogram_quantile(0.9, sum by (le) (rate({M}_bucket[5m])))",
    f"histogram_quantile(0.5, sum by (le, service_name) (rate({M}_bucket[5m])))",
    f"histogram_quantile(0.99, sum by (le) (increase({M}_bucket[3m])))",
])
def test_promtool_reads_the_bucket_series_as_a_classic_histogram(tmp_path, expr):
    """The `_bucket` counters Tocsin exposes, sampled each minute and handed to Prometheus's
    promtool as ordinary series, give the classic quantile Tocsin computes over its own view
    (every slot holds the same distribution, so extrapolation cannot tell the windows apart)."""
    from test_promtool_oracle import _canon, _parse_got

    b = HistBuilder()
    x = _durations(400, seed=9)
    for i in range(66):                                   # 11 minutes of 10 s slots from t=0
        b.add_hdr(M, {"service_name": "checkout"}, 10 * i, x)
    e = Engine(b.source(), clock=lambda: 3600.0)
    series: dict[str, list] = {}
    for minute in range(11):
        for labels, v in e.instant_vector(f"{M}_bucket", minute * 60):
            key = f'{M}_bucket{{le="{labels["le"]}", service_name="checkout"}}'
            series.setdefault(key, ["_"] * 11)[minute] = repr(float(v))
    ours = e.instant_vector(expr, 570)
    assert ours and all(0.002 <= v <= 15 for _, v in ours)
    lines = ["rule_files: []", "evaluation_interval: 1m", "tests:", "  - interval: 1m", "    input_series:"]
    for s, vals in series.items():
        lines += [f"      - series: {json.dumps(s)}", f"        values: {json.dumps(' '.join(vals))}"]
    lines += ["    promql_expr_test:", f"      - expr: {json.dumps(expr)}", "        eval_time: 9m30s",
              "        exp_samples:"]
    for labels, v in ours:
        rest = ", ".join(f"{k}={json.dumps(val)}" for k, val in sorted(labels.items()))
        lines += [f"          - labels: {json.dumps('{' + rest + '}')}", f"            value: {v!r}"]
    f = tmp_path / "t.yaml"
    f.write_text("\n".join(lines) + "\n")
    run = subprocess.run(["promtool", "test", "rules", str(f)], capture_output=True, text=True, timeout=60)
    if run.returncode == 0:
        return
    out = run.stdout + run.stderr
    got = _parse_got(out)
    mine = {_canon(lbl): v for lbl, v in ours}
    assert set(got) == set(mine), out
    for k, v in mine.items():   # promtool 2.42 compares exactly; allow float rounding only
        assert math.isclose(v, got[k], rel_tol=1e-9), (k, v, got[k], out)
