"""The aggregator's own guarantees: a batch put back comes out unchanged, and
a worker's batch adopted by the main process registers its series."""
import numpy as np

from collector.aggregate.aggregator import Aggregator
from collector.model import NS, SeriesCatalog, make_labels

NOW = 1_800_000_000 * NS


def _filled():
    agg = Aggregator(SeriesCatalog(), clock=lambda: NOW)
    labels = [make_labels({"service_name": s}) for s in ("a", "b")]
    rng = np.random.default_rng(2)
    agg.record_durations("m", labels, rng.integers(0, 2, 500), NOW - rng.integers(1, 60, 500) * NS,
                         rng.lognormal(-2, 1, 500))
    agg.record_custom("c", labels[0], NOW - 5 * NS, (0.1, 1.0), np.array([1, 2, 3]), 4.0)
    return agg


def _same(x, y):
    assert np.array_equal(x.series_id, y.series_id) and np.array_equal(x.ts, y.ts)
    assert np.array_equal(x.count, y.count) and np.allclose(x.sum, y.sum)
    assert np.array_equal(x.idx, y.idx) and np.array_equal(x.cnt, y.cnt) and x.bounds == y.bounds


def test_putback_returns_exactly_what_was_taken():
    agg = _filled()
    first = agg.take_closed(force=True)
    agg.putback(first)
    again = agg.take_closed(force=True)
    _same(first.hist, again.hist)
    assert [s.id for s in again.series] == [s.id for s in first.series]


def test_adopting_a_workers_batch_registers_its_series():
    worker = _filled()
    batch = worker.take_closed(force=True)
    main = Aggregator(SeriesCatalog(), clock=lambda: NOW)
    main.putback(batch, adopt=True)
    assert {s.id for s in main.catalog.all()} == {s.id for s in batch.series}
    _same(batch.hist, main.take_closed(force=True).hist)
