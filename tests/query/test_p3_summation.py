"""Float summation as Prometheus 3: compensated sums in sum, avg, stddev and the
*_over_time functions, averages that do not overflow — checked against exact
rational arithmetic (fractions), by hand-picked cases and by hypothesis."""
from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings, strategies as st

from p3 import L, engine, instant, same


def _exact(xs):
    return float(sum(Fraction(x) for x in xs))


CASES = [
    # (values of m{i=...}, expr, expected)
    ([1e100, 1, -1e100], "sum(m)", 1.0),
    ([1e100, 1, -1e100, 1], "sum(m)", 2.0),
    ([1e308, 1e308, 1e308], "avg(m)", 1e308),
    ([-1e308, -1e308, 1e308], "avg(m)", -1e308 / 3),
    ([1e308, 1e308], "sum(m)", math.inf),
    ([math.inf, -math.inf], "sum(m)", math.nan),
    ([math.inf, 1], "avg(m)", math.inf),
    ([0.1] * 10, "sum(m)", _exact([0.1] * 10)),
    ([3, 1e16, -1e16], "avg(m)", 1.0),
    ([1e16, 1, -1e16, 2], "stdvar(m)", float(sum((Fraction(x) - Fraction(3, 4)) ** 2 for x in [1e16, 1, -1e16, 2]) / 4)),
]


@pytest.mark.parametrize("values,expr,want", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_aggregations(values, expr, want):
    e = engine("\n".join(f'm{{i="{i}"}} {v!r}'.replace("inf", "Inf").replace("nan", "NaN")
                         for i, v in enumerate(values)))
    assert same(instant(e, expr, 0), {L(): want})


OVER_TIME = [
    ("1e100 1 -1e100 1", "sum_over_time(m[30m])", 2.0),
    ("1e308 1e308 1e308", "avg_over_time(m[30m])", 1e308),
    ("0.1 0.2 0.3 0.4", "sum_over_time(m[30m])", _exact([0.1, 0.2, 0.3, 0.4])),
    ("1e16 1 -1e16", "avg_over_time(m[30m])", 1 / 3),
    ("5 Inf -Inf", "sum_over_time(m[30m])", math.nan),
    ("1e16 1 -1e16 2", "stdvar_over_time(m[30m])",
     float(sum((Fraction(x) - Fraction(3, 4)) ** 2 for x in [1e16, 1, -1e16, 2]) / 4)),
]


@pytest.mark.parametrize("values,expr,want", OVER_TIME, ids=[c[1] + str(i) for i, c in enumerate(OVER_TIME)])
def test_over_time(values, expr, want):
    assert same(instant(engine(f"m {values}"), expr, 900), {L(): want})


floats = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e300, max_value=1e300)


@settings(max_examples=60, deadline=None)
@given(st.lists(floats, min_size=1, max_size=12))
def test_sum_and_avg_agree_with_exact_rationals(xs):
    """sum and avg within a few ulps of the exact rational result (where it is finite)."""
    e = engine("\n".join(f'm{{i="{i}"}} {x!r}' for i, x in enumerate(xs)))
    exact_sum = sum(Fraction(x) for x in xs)
    exact_avg = exact_sum / len(xs)
    got = instant(e, "sum(m)", 0)[L()]
    if abs(exact_sum) < Fraction(1.7e308):
        assert got == pytest.approx(float(exact_sum), rel=1e-12, abs=1e-300 + 4 * max(abs(x) for x in xs) * 2**-52)
    avg = instant(e, "avg(m)", 0)[L()]
    assert math.isfinite(avg)
    assert avg == pytest.approx(float(exact_avg), rel=1e-12, abs=4 * max(abs(x) for x in xs) * 2**-52)


@settings(max_examples=60, deadline=None)
@given(st.lists(floats, min_size=1, max_size=12))
def test_sum_over_time_is_the_correctly_rounded_sum(xs):
    e = engine("m " + " ".join(repr(x) for x in xs))
    t = (len(xs) - 1) * 300
    exact = sum(Fraction(x) for x in xs)
    got = instant(e, f"sum_over_time(m[{len(xs) * 5}m])", t)[L()]
    if abs(exact) < Fraction(1.7e308):
        if min(xs) < 0 < max(xs):   # cancellation possible: the correctly rounded sum
            assert got == float(exact)
        else:                       # one sign: no cancellation, within n ulps
            assert got == pytest.approx(float(exact), rel=len(xs) * 2**-52, abs=1e-300)
    got = instant(e, f"avg_over_time(m[{len(xs) * 5}m])", t)[L()]
    assert got == pytest.approx(float(exact / len(xs)), rel=1e-15, abs=1e-300)
