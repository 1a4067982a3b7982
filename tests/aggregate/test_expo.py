"""Exponential histogram buckets → HDR indices, against hand-computed values."""
import math

import numpy as np
import pytest

from collector.aggregate import expo, hdr


def point(scale, pos_offset, pos, zero=0, neg_offset=0, neg=()):
    pos, neg = np.array(pos, np.int64), np.array(neg, np.int64)
    return expo.ExpoPoint(scale, zero, pos_offset, pos, neg_offset, neg, int(zero + pos.sum() + neg.sum()), 0.0)


@pytest.mark.parametrize("scale, offset, expected", [
    # scale 0: base 2, bucket i = (2**i, 2**(i+1)], midpoint 2**(i + 0.5)
    (0, 0, [math.sqrt(2), 2 * math.sqrt(2), 4 * math.sqrt(2)]),
    (0, -3, [0.17677669529663687, 0.3535533905932738, 0.7071067811865476]),
    # scale 3: base 2**(1/8); bucket 8 = (2, 2**(9/8)], midpoint 2**(8.5/8)
    (3, 8, [2 ** (8.5 / 8), 2 ** (9.5 / 8)]),   # 2.08855, 2.27758
    # scale 20: bucket 2**20 = (2, 2**(1 + 2**-20)], midpoint 2**(1 + 0.5 * 2**-20)
    (20, 1 << 20, [2 * 2 ** (0.5 / 2 ** 20)]),   # ≈ 2 + ln(2) / 2**20 = 2.00000066
    # scale -2: base 16; bucket -2 = (1/256, 1/16], -1 = (1/16, 1], 0 = (1, 16]
    (-2, -2, [1 / 64, 0.25, 4.0]),
])
def test_midpoints(scale, offset, expected):
    got = expo.midpoints(scale, offset, len(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("scale, offset", [(0, -12), (3, -40), (20, -(10 << 20)), (-2, -4), (0, 2), (7, -300)])
def test_to_hdr_places_each_count_at_its_midpoint(scale, offset):
    counts = [3, 0, 5, 1]
    idx, cnt, clamped = expo.to_hdr(point(scale, offset, counts))
    assert clamped == 0
    mids = np.array([2.0 ** ((offset + k + 0.5) / 2.0 ** scale) for k in range(4)])
    want_idx, _, _ = hdr.index_of_seconds(mids)
    want = {}
    for i, c in zip(want_idx.tolist(), counts):
        if c:
            want[i] = want.get(i, 0) + c
    assert dict(zip(idx.tolist(), cnt.tolist())) == want
    # what HDR reports is within its own precision of the midpoint
    rep = hdr.mid_seconds(want_idx[[0, 2, 3]])
    np.testing.assert_allclose(rep, mids[[0, 2, 3]], rtol=hdr.MAX_RELATIVE_ERROR, atol=1e-6)


def test_zero_bucket_and_negative_buckets_go_to_zero():
    idx, cnt, clamped = expo.to_hdr(point(0, 0, [2], zero=4, neg_offset=-1, neg=[1, 2]))
    assert clamped == 3
    assert dict(zip(idx.tolist(), cnt.tolist())) == {0: 7, int(hdr.index_of_seconds(np.array([math.sqrt(2)]))[0][0]): 2}


def test_unit_factor_converts_milliseconds():
    # bucket 3 at scale 0 is (8, 16] ms, midpoint 8*sqrt(2) ms = 11.3137 ms
    idx, cnt, _ = expo.to_hdr(point(0, 3, [10]), factor=1e-3)
    assert cnt.tolist() == [10]
    assert hdr.mid_seconds(idx)[0] == pytest.approx(0.0113137, rel=hdr.MAX_RELATIVE_ERROR)


def test_values_above_one_hour_are_clamped_and_counted():
    idx, cnt, clamped = expo.to_hdr(point(-10, 0, [1, 2]))   # 2**512 seconds and beyond
    assert clamped == 3 and cnt.sum() == 3


def test_downscale_merges_pairs_including_negative_indices():
    off, c = expo.downscale(-3, np.array([1, 2, 3, 4]), 1)   # indices -3..0 → -2, -1, -1, 0
    assert off == -2 and c.tolist() == [1, 5, 4]


def test_subtract_aligns_scales_and_offsets():
    prev = point(3, 10, [1, 1])
    cur = point(2, 5, [3, 4])    # prev at scale 2: index 5 holds 2
    d = expo.subtract(cur, prev)
    assert (d.scale, d.pos_offset, d.pos_counts.tolist(), d.count) == (2, 5, [1, 4], 5)
    assert expo.subtract(prev, point(3, 10, [2, 1])) is None   # a count went down: reset
