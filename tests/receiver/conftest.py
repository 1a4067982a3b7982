"""A real OTLP/HTTP server (uvicorn) and OTLP/gRPC server (grpc.aio) on free
loopback ports, sharing one real Aggregator, for the receiver tests."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import uvicorn

from collector.aggregate import hdr
from collector.aggregate.aggregator import Aggregator
from collector.model import SeriesCatalog
from collector.receiver.ingest import Ingest
from collector.receiver.otlp_grpc import make_grpc_server
from collector.receiver.otlp_http import make_otlp_http_app
from collector.receiver.settings import ReceiverSettings
from collector.selfmetrics import SelfMetrics


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
    ingest = Ingest(agg, settings, metrics)

    app = make_otlp_http_app(agg, settings, metrics, ingest=ingest)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    http_thread = threading.Thread(target=server.run, daemon=True)
    http_thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    http_port = server.servers[0].sockets[0].getsockname()[1]

    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()

    async def start_grpc():
        srv, port = make_grpc_server(agg, settings, metrics, "127.0.0.1:0", ingest=ingest)
        await srv.start()
        return srv, port

    grpc_server, grpc_port = asyncio.run_coroutine_threadsafe(start_grpc(), loop).result(10)
    yield Stack(agg, metrics, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
    asyncio.run_coroutine_threadsafe(grpc_server.stop(None), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join(5)
    server.should_exit = True
    http_thread.join(5)


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
