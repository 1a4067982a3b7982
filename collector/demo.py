"""``tocsin demo``: traffic from a small shop, sent like a real application
sends it — the OpenTelemetry SDK, a TracerProvider per service with a
BatchSpanProcessor and the OTLP exporter — with a scripted checkout incident
that makes the example rule ``CheckoutSlow`` (rules/latency.yaml) fire and resolve.

Without ``--target`` the exporter follows the usual environment variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``,
``OTEL_EXPORTER_OTLP_HEADERS`` for a bearer token); with neither it sends to
``http://127.0.0.1:4318`` (``http://127.0.0.1:4317`` over gRPC).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, TextIO

from collector.demo_shop import INCIDENT, NORMAL, SERVICES, Call, Schedule, Shop, expected_p95

TICK_S = 0.1
DEFAULT_PORTS = {"grpc": 4317, "http": 4318}


@dataclass(frozen=True)
class Target:
    protocol: str          # "grpc" | "http"
    endpoint: str | None   # None: the exporter reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT itself
    shown: str             # for the messages


def resolve_target(target: str | None, protocol: str | None, environ=os.environ) -> Target:
    """--target/--protocol first, then the OTEL_EXPORTER_OTLP_* variables, then 127.0.0.1."""
    if protocol is None:
        env_proto = (environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                     or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").strip().lower()
        protocol = "grpc" if env_proto == "grpc" else "http"   # http/protobuf; http/json is sent as protobuf
    if target:
        if "://" not in target:
            target = "http://" + target
        target = target.rstrip("/")
        if protocol == "http" and not target.endswith("/v1/traces"):
            return Target(protocol, target + "/v1/traces", target)
        return Target(protocol, target, target)
    env = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if env:
        return Target(protocol, None, env)
    default = f"http://127.0.0.1:{DEFAULT_PORTS[protocol]}"
    return Target(protocol, default + ("/v1/traces" if protocol == "http" else ""), default)


def unreachable(t: Target) -> str | None:
    """Why nothing can be sent to ``t`` (nothing listens there), or None. Checked once
    at start, so a demo started before the server says so instead of retrying."""
    import socket
    from urllib.parse import urlsplit

    url = t.shown if "://" in t.shown else f"http://{t.shown}"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[t.protocol]
    except ValueError:
        return None   # let the exporter report what it makes of it
    try:
        socket.create_connection((host, port), timeout=3).close()
        return None
    except OSError as e:
        why = (e.strerror or type(e).__name__).lower()
        return (f"nothing answers at {host}:{port} ({why}): start the server first (make run), "
                "or point --target or OTEL_EXPORTER_OTLP_ENDPOINT at it")


def make_exporter(t: Target):
    if t.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        return OTLPSpanExporter(endpoint=t.endpoint) if t.endpoint else OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=t.endpoint) if t.endpoint else OTLPSpanExporter()


class Emitter:
    """One TracerProvider per service, as three separate applications would have."""

    def __init__(self, target: Target):
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.providers, self.tracers = [], {}
        for service in SERVICES:
            provider = TracerProvider(shutdown_on_exit=False, resource=Resource.create({
                "service.name": service, "service.namespace": "shop", "service.version": "1.4.2",
                "deployment.environment.name": "demo"}))
            provider.add_span_processor(BatchSpanProcessor(
                make_exporter(target), max_queue_size=50_000, max_export_batch_size=1024, schedule_delay_millis=500))
            self.providers.append(provider)
            self.tracers[service] = provider.get_tracer("tocsin.demo")
        self.spans = 0

    def emit(self, call: Call, end_ns: int) -> None:
        """The request ends now: its spans end at ``end_ns`` or before."""
        self._server(call, end_ns - int(call.duration_s * 1e9), None)

    def _server(self, call: Call, start_ns: int, parent) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        r = call.route
        span = self.tracers[r.service].start_span(
            f"{r.method} {r.route}", kind=SpanKind.SERVER, start_time=start_ns,
            context=set_span_in_context(parent) if parent is not None else None,
            attributes={"http.request.method": r.method, "http.route": r.route, "url.scheme": "http",
                        "http.response.status_code": call.status_code})
        for offset_s, child in call.children:
            child_start = start_ns + int(offset_s * 1e9)
            gap = int(0.0005 * 1e9)
            client = self.tracers[r.service].start_span(
                child.route.method, kind=SpanKind.CLIENT, start_time=child_start - gap,
                context=set_span_in_context(span),
                attributes={"http.request.method": child.route.method, "server.address": child.route.service,
                            "http.response.status_code": child.status_code})
            self._server(child, child_start, client)
            if child.error:
                client.set_status(Status(StatusCode.ERROR))
            client.end(end_time=child_start + int(child.duration_s * 1e9) + gap)
            self.spans += 1
        if call.error:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=start_ns + int(call.duration_s * 1e9))
        self.spans += 1

    def close(self, interrupted: bool = False) -> None:
        """Send what is queued. After Ctrl-C, give it three seconds and stop: an exporter
        retrying a server that has gone away would otherwise hold the terminal a minute."""
        import logging
        import threading

        def shutdown():
            for p in self.providers:
                p.force_flush()
                p.shutdown()

        if not interrupted:
            shutdown()
            return
        logging.getLogger("opentelemetry").setLevel(logging.CRITICAL)   # its retry lines, after the user said stop
        t = threading.Thread(target=shutdown, daemon=True)
        t.start()
        t.join(3.0)


def _phase_line(phase: str, sched: Schedule, args, target: Target, t: float) -> str:
    now = datetime.now(timezone.utc).strftime("%H:%M:%S")
    if phase == NORMAL:
        what = (f"normal traffic, {args.rate:g} req/s to {target.shown} over {target.protocol}; checkout p95 "
                f"~{expected_p95('checkout', NORMAL, 4000):.2f}s")
        if sched.incident_for > 0:
            what += f"; incident in {sched.incident_after:g}s"
    elif phase == INCIDENT:
        what = (f"incident: checkout's database is saturated, checkout p95 ~{expected_p95('checkout', INCIDENT, 4000):.1f}s "
                f"for {sched.incident_for:g}s; CheckoutSlow (p95 over 1m > 500ms for 1m) fires in about 75s")
    else:
        what = "recovered: checkout is back to normal; CheckoutSlow resolves once p95 over 1m is below 400ms (in about 1-2m)"
    return f"demo {now} +{t:.0f}s phase={phase}: {what}"


def run(args, out: TextIO = sys.stdout, clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep, wall_ns: Callable[[], int] = time.time_ns,
        environ=os.environ) -> int:
    sched = Schedule(args.incident_after, args.incident_for)
    target = resolve_target(args.target, args.protocol, environ)
    problem = unreachable(target)
    if problem:
        print(f"tocsin demo: {problem}", file=sys.stderr)
        return 1
    shop, emitter = Shop(args.seed), Emitter(target)
    interrupted = False
    start = last = clock()
    due, phase, requests = 0.0, None, 0
    try:
        while True:
            now = clock()
            t = now - start
            if args.duration > 0 and t >= args.duration:
                break
            p = sched.phase_at(t)
            if p != phase:
                phase = p
                print(_phase_line(p, sched, args, target, t), file=out, flush=True)
            due += args.rate * (now - last)
            last = now
            n, due = int(due), due - int(due)
            end_ns = wall_ns()
            for _ in range(n):
                emitter.emit(shop.request(phase), end_ns)
            requests += n
            sleep(max(0.0, TICK_S - (clock() - now)))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        emitter.close(interrupted)
    print(f"demo done: {requests} requests, {emitter.spans} spans handed to the exporter", file=out, flush=True)
    return 0


def _seconds(text: str) -> float:
    from collector.durations import parse_duration

    try:
        return parse_duration(text if not text.replace(".", "", 1).isdigit() else float(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", help="OTLP endpoint, e.g. http://127.0.0.1:4318 (default: $OTEL_EXPORTER_OTLP_ENDPOINT, "
                                    "then http://127.0.0.1:4318, or :4317 with --protocol grpc)")
    p.add_argument("--protocol", choices=["grpc", "http"],
                   help="(default: grpc if $OTEL_EXPORTER_OTLP_PROTOCOL is grpc, else http)")
    p.add_argument("--duration", type=_seconds, default=600.0, metavar="DURATION",
                   help="how long to run, e.g. 10m; 0 runs until Ctrl-C (default: 10m)")
    p.add_argument("--incident-after", type=_seconds, default=60.0, metavar="DURATION",
                   help="checkout slows down after this (default: 1m)")
    p.add_argument("--incident-for", type=_seconds, default=180.0, metavar="DURATION",
                   help="and stays slow this long; 0: no incident (default: 3m)")
    p.add_argument("--rate", type=float, default=20.0, help="browser requests per second (default: 20)")
    p.add_argument("--seed", type=int, default=1, help="random seed: same seed, same traffic (default: 1)")


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="send a small shop's traffic, with a checkout incident, to an OTLP endpoint",
                              description="Send a small shop's traffic (frontend, checkout, catalog) through the "
                                          "OpenTelemetry SDK, with a scripted checkout incident that makes the "
                                          "example rule CheckoutSlow fire and resolve.")
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    p = argparse.ArgumentParser(prog="tocsin demo")
    add_arguments(p)
    return run(p.parse_args(argv), out=out)
