"""Real OTLP/HTTP (uvicorn) and OTLP/gRPC (grpc.aio) servers on free loopback
ports around one given ``Ingest``, optionally behind bearer tokens, for the
tests that need their own limits (the session ``stack`` has the defaults)."""
from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass

import uvicorn

from collector.auth import INGEST, BearerAuth, Tokens
from collector.receiver.ingest import Ingest
from collector.receiver.otlp_grpc import make_grpc_server
from collector.receiver.otlp_http import make_otlp_http_app


@dataclass
class Servers:
    ingest: Ingest
    http_url: str
    grpc_target: str


@contextlib.contextmanager
def serve(ingest: Ingest, tokens: Tokens | None = None, wrap=None):
    app = make_otlp_http_app(ingest.aggregator, ingest.settings, ingest.metrics, ingest=ingest)
    if tokens is not None:
        app = BearerAuth(app, tokens, lambda method, path: INGEST)
    if wrap is not None:
        app = wrap(app)
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
        srv, port = make_grpc_server(ingest.aggregator, ingest.settings, ingest.metrics, "127.0.0.1:0",
                                     ingest=ingest, tokens=tokens)
        await srv.start()
        return srv, port

    grpc_server, grpc_port = asyncio.run_coroutine_threadsafe(start_grpc(), loop).result(10)
    try:
        yield Servers(ingest, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
    finally:
        asyncio.run_coroutine_threadsafe(grpc_server.stop(None), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(5)
        server.should_exit = True
        http_thread.join(5)
