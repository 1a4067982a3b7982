"""Our numpy HDR index against the reference hdrhistogram implementation."""
import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from collector.aggregate import hdr


@pytest.fixture(scope="module")
def reference():
    return HdrHistogram(hdr.LOWEST_US, hdr.HIGHEST_US, hdr.SIGNIFICANT_DIGITS)


def test_layout_matches_reference(reference):
    assert hdr.COUNTS_LEN == reference.counts_len


def test_index_equals_reference_on_random_and_edge_values(reference):
    rng = np.random.default_rng(7)
    values = np.concatenate([
        rng.integers(0, 1000, 2000),
        np.exp(rng.uniform(0, np.log(hdr.HIGHEST_US), 20_000)).astype(np.int64),
        # powers of two and their neighbours: where buckets change
        *[np.array([(1 << k) - 1, 1 << k, (1 << k) + 1]) for k in range(0, 32)],
        np.array([0, 1, 127, 128, 255, 256, 257, hdr.HIGHEST_US - 1, hdr.HIGHEST_US]),
    ]).astype(np.int64)
    values = values[values <= hdr.HIGHEST_US]
    ours = hdr.index_of_units(values)
    ref = np.array([reference._counts_index_for(int(v)) for v in values])
    mismatch = np.nonzero(ours != ref)[0]
    assert len(mismatch) == 0, f"first mismatches: {values[mismatch[:5]]}"
    lower = hdr.lower_units(ours)
    upper = lower + hdr.width_units(ours)
    assert np.all((lower <= values) & (values < upper))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_quantiles_within_one_percent_of_exact(seed):
    rng = np.random.default_rng(seed)
    seconds = rng.lognormal(np.log(0.05), 1.2, 50_000).clip(1e-4, 3000)
    idx, n_low, n_high = hdr.index_of_seconds(seconds)
    assert n_low == n_high == 0
    u, c = hdr.merge(idx, np.ones(len(idx), np.int64))
    qs = [0.5, 0.9, 0.95, 0.99, 0.999]
    got = hdr.quantiles(u, c, qs)
    exact = np.quantile(seconds, qs, method="inverted_cdf")
    np.testing.assert_allclose(got, exact, rtol=0.01)


def test_out_of_range_values_are_clamped_and_counted():
    idx, n_low, n_high = hdr.index_of_seconds(np.array([-1.0, 0.5, 4000.0, 7200.0, np.nan]))
    assert (n_low, n_high) == (1, 3)
    assert idx[0] == 0
    top = hdr.index_of_units(np.array([hdr.HIGHEST_US]))[0]
    assert list(idx[2:]) == [top] * 3
