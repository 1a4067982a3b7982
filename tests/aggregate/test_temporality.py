import numpy as np

from collector.aggregate.temporality import CumulativeToDelta, DeltaToCumulative, HistPoint, subtract_explicit
from collector.model import NS

NOW = 1_700_000_000 * NS
B = (0.1, 1.0)


def hp(counts, total_sum=0.0, bounds=B):
    c = np.array(counts, np.int64)
    return HistPoint(bounds, c, int(c.sum()), total_sum)


def counts(p):
    return None if p is None else p.counts.tolist()


def test_first_point_counts_only_when_the_series_started_recently():
    c2d = CumulativeToDelta(subtract_explicit, lateness_ns=300 * NS)
    assert counts(c2d.delta("recent", NOW - 60 * NS, NOW, hp([1, 2, 3]), NOW)) == [1, 2, 3]
    assert c2d.delta("old", NOW - 3600 * NS, NOW, hp([1, 2, 3]), NOW) is None   # baseline
    assert counts(c2d.delta("old", NOW - 3600 * NS, NOW + NS, hp([2, 2, 5]), NOW)) == [1, 0, 2]


def test_deltas_resets_and_repeats():
    c2d = CumulativeToDelta(subtract_explicit, lateness_ns=300 * NS)
    s = NOW - 10 * NS
    assert counts(c2d.delta("k", s, NOW, hp([1, 1, 1], 3.0), NOW)) == [1, 1, 1]
    d = c2d.delta("k", s, NOW + NS, hp([2, 3, 1], 5.0), NOW)
    assert counts(d) == [1, 2, 0] and d.count == 3 and d.sum == 2.0
    assert c2d.delta("k", s, NOW + NS, hp([2, 3, 1], 5.0), NOW) is None           # a retry: nothing new
    assert counts(c2d.delta("k", s, NOW + 2 * NS, hp([1, 0, 0]), NOW)) == [1, 0, 0]  # decrease: reset
    assert counts(c2d.delta("k", NOW, NOW + 3 * NS, hp([0, 1, 0]), NOW)) == [0, 1, 0]  # new start: reset
    assert counts(c2d.delta("k", NOW, NOW + 4 * NS, hp([0, 1, 0, 0], bounds=(1, 2, 3)), NOW)) == [0, 1, 0, 0]


def test_state_is_bounded():
    c2d = CumulativeToDelta(subtract_explicit, lateness_ns=300 * NS, max_series=2)
    for k in "abc":
        c2d.delta(k, NOW, NOW, hp([1, 0, 0]), NOW)
    assert len(c2d) == 2


def test_delta_sums_become_running_totals():
    d2c = DeltaToCumulative()
    assert [d2c.add("a", v) for v in (1.0, 2.5, 0.5)] == [1.0, 3.5, 4.0]
    assert d2c.add("b", 7.0) == 7.0
