"""A real OTLP/HTTP server (uvicorn) and OTLP/gRPC server (grpc.aio) on free
loopback ports, sharing one real Aggregator, for the receiver tests."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from collector.aggregate import hdr
from collector.aggregate.aggregator import Aggregator
from collector.model import SeriesCatalog
from collector.receiver.ingest import Ingest
from collector.receiver.settings import ReceiverSettings
from collector.selfmetrics import SelfMetrics
from limit_servers import serve


@dataclass
class Stack:
    aggregator: Aggregator
    metrics: SelfMetrics
    http_url: str
    grpc_target: str


@pytest.fixture(scope="session")
def stack():
    agg = Aggregator(SeriesCatalog())
    metrics = SelfMetrics()
    settings = ReceiverSettings(span_dimensions=("deployment.environment",))
    with serve(Ingest(agg, settings, metrics)) as servers:
        yield Stack(agg, metrics, servers.http_url, servers.grpc_target)


def series_of(agg: Aggregator, metric: str, **match) -> list:
    return [s for s in agg.catalog.all()
            if s.metric == metric and all(dict(s.labels).get(k) == v for k, v in match.items())]


def read_hist(agg: Aggregator, metric: str, **match):
    """All in-memory rows of the matching series, merged: (idx, cnt, bounds, sum)."""
    sids = np.array([s.id for s in series_of(agg, metric, **match)], np.uint64)
    rows, _ = agg.snapshot(sids, 0, 2**62)
    bounds = {rows.row_bounds(i) for i in range(len(rows))}
    assert len(bounds) <= 1, f"rows with different layouts: {bounds}"
    b = bounds.pop() if bounds else None
    if b is None:
        idx, cnt = hdr.merge(rows.idx, rows.cnt)
    else:
        cnt = np.zeros(len(b) + 1, np.int64)
        np.add.at(cnt, rows.idx, rows.cnt)
        idx = np.arange(len(b) + 1)
    return idx, cnt, b, float(np.sum(rows.sum))


def read_samples(agg: Aggregator, metric: str, **match):
    sids = np.array([s.id for s in series_of(agg, metric, **match)], np.uint64)
    _, samples = agg.snapshot(sids, 0, 2**62)
    order = np.argsort(samples.ts, kind="stable")
    return samples.ts[order], samples.value[order]


def assert_quantiles(idx, cnt, values, rtol=0.01):
    qs = [0.5, 0.95, 0.99]
    got = hdr.quantiles(idx, cnt, qs)
    exact = np.quantile(np.asarray(values), qs, method="inverted_cdf")
    np.testing.assert_allclose(got, exact, rtol=rtol)


@pytest.fixture(scope="session")
def helpers():
    class H:
        pass
    h = H()
    h.series_of, h.read_hist, h.read_samples, h.assert_quantiles = series_of, read_hist, read_samples, assert_quantiles
    return h
