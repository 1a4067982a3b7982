"""Opt-in multi-process receivers (``receivers.processes: N``).

Main starts N-1 worker processes (spawn). Each binds the same OTLP/HTTP and
OTLP/gRPC ports with SO_REUSEPORT and runs its own Ingest + Aggregator + WAL
(``<WAL directory>/worker-<i>/``). Main owns the store, queries and rules.

Protocol over one duplex Pipe per worker (pickled tuples):
  main → worker  ("ship", n)      worker rotates its WAL and takes its aggregator
                                  (no await between) and answers
  worker → main  ("batch", n, seg, WriteBatch)   seg: the WAL segment the batch covers;
                                  a late answer (n older) is absorbed too, then main reads on
  main → worker  ("drop", seg)    main wrote that segment's data to the store
  main → worker  ("stop", n)      stop accepting, answer with a last batch
  main → worker  ("exit",)        close the WAL and exit
  worker → main  ("ready",) once listening; ("error", text) if it cannot start.

Exactly once: main absorbs a batch into its aggregator and records ``seg`` as
shipped under one lock; its flush takes the aggregator and the shipped markers
under the same lock and writes them in one transaction (meta key
``wal_segment:worker-<i>``); only then it sends ("drop", seg). On start, main
replays every ``worker-*`` WAL directory after its marker before starting workers.

Caveats: rate limits and the memory limiter are per process; a worker's
self-metrics are not in main's /metrics.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import re
import signal
import threading
import time
from pathlib import Path

from collector.store.base import WriteBatch

log = logging.getLogger("tocsin.workers")

SHIP_TIMEOUT_S = 2.0
SHIP_EVERY_S = 0.5
_WORKER_DIR = re.compile(r"^worker-(\d+)$")


def marker_name(index: int) -> str:
    return f"worker-{index}"


def worker_dirs(wal_root: Path) -> list[tuple[str, Path]]:
    if not wal_root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in wal_root.iterdir() if p.is_dir() and (m := _WORKER_DIR.match(p.name))]
    return [(marker_name(i), p) for i, p in sorted(found)]


def absorb(aggregator, batch: WriteBatch) -> None:
    """Add a worker's batch to main's aggregator; series main has not seen yet
    are registered (catalog included) and written by main's next flush."""
    aggregator.putback(batch, adopt=True)


class _Worker:
    def __init__(self, index: int, proc, conn):
        self.index, self.name, self.proc, self.conn = index, marker_name(index), proc, conn
        self.send_lock = threading.Lock()
        self.alive = True
        self.asked = 0   # number of the last ship request


class WorkerPool:
    """Main's side: starts the workers, asks them to ship, absorbs, releases WAL segments."""

    def __init__(self, service):
        self.service = service
        self.workers: list[_Worker] = []
        self.absorb_lock = threading.Lock()   # absorb+marker vs flush's take+markers
        self._io = threading.Lock()           # one ship round at a time (replies are in order)
        self.shipped: dict[str, int] = {}     # worker name -> last WAL segment absorbed
        self._replayed: dict[str, object] = {}  # name -> WriteAheadLog replayed at start
        self.stopping = False
        self.wal_root = service.wal.dir if service.wal is not None else None

    # -- start ------------------------------------------------------------------
    def replay(self) -> int:
        """Re-apply acknowledged records of worker WALs left by a previous run;
        the next flush writes them with the workers' markers."""
        from collector.wal import WriteAheadLog

        n = 0
        for name, path in worker_dirs(self.wal_root) if self.wal_root else []:
            wal = WriteAheadLog(path)
            for rec in wal.replay(after=self.service.store.wal_marker(name)):
                self.service.ingest.replay(rec)
                n += 1
            if wal.torn_records:
                log.warning("worker WAL %s: %d torn records skipped", name, wal.torn_records)
            with self.absorb_lock:
                self.shipped[name] = wal.rotate()
            self._replayed[name] = wal
        return n

    def start(self, count: int, http_addr: str, grpc_addr: str) -> None:
        ctx = mp.get_context("spawn")
        for i in range(1, count + 1):
            parent, child = ctx.Pipe(duplex=True)
            wal_dir = str(self.wal_root / marker_name(i)) if self.wal_root else None
            proc = ctx.Process(target=worker_main, name=f"tocsin-receiver-{i}", daemon=True,
                               args=(i, child, self.service.config, http_addr, grpc_addr, wal_dir))
            proc.start()
            child.close()
            self.workers.append(_Worker(i, proc, parent))
        for w in self.workers:
            if not w.conn.poll(60):
                raise SystemExit(f"receiver worker {w.index} did not start")
            msg = w.conn.recv()
            if msg[0] != "ready":
                raise SystemExit(f"receiver worker {w.index} failed: {msg[1]}")
        log.info("started %d receiver worker processes", len(self.workers))

    # -- shipping -----------------------------------------------------------------
    def sync(self, timeout: float = SHIP_TIMEOUT_S, op: str = "ship") -> bool:
        """Ask every live worker to ship now and absorb the answers; True when all
        answered within ``timeout``. Thread-safe (queries call it from threads)."""
        ok = True
        with self._io:
            if self.stopping:   # the workers have shipped their last data
                return True
            asked = []
            for w in self.workers:
                w.asked += 1
                if w.alive and self._send(w, (op, w.asked)):
                    asked.append(w)
            deadline = time.monotonic() + timeout
            for w in asked:
                if not self._receive(w, deadline):
                    ok = False
        return ok

    def _receive(self, w: _Worker, deadline: float) -> bool:
        while True:
            try:
                if not w.conn.poll(max(0.0, deadline - time.monotonic())):
                    log.warning("receiver worker %d did not ship within %.1fs", w.index, SHIP_TIMEOUT_S)
                    return False
                msg = w.conn.recv()
            except (EOFError, OSError):
                self._dead(w)
                return False
            if msg[0] == "batch":
                _, n, seg, batch = msg
                with self.absorb_lock:
                    absorb(self.service.aggregator, batch)
                    if seg is not None:
                        self.shipped[w.name] = seg
                if n == w.asked:   # else a late answer to an earlier request: absorbed, read on
                    return True

    def _send(self, w: _Worker, msg) -> bool:
        try:
            with w.send_lock:
                w.conn.send(msg)
            return True
        except (OSError, ValueError):
            self._dead(w)
            return False

    def _dead(self, w: _Worker) -> None:
        if w.alive:
            w.alive = False
            log.error("receiver worker %d died (exit code %s); what it acknowledged is in its WAL "
                      "and is replayed at the next start", w.index, w.proc.exitcode)

    def check(self) -> None:
        for w in self.workers:
            if w.alive and not w.proc.is_alive():
                self._dead(w)

    # -- flush hooks --------------------------------------------------------------
    def markers(self) -> dict[str, int]:
        """Call with ``absorb_lock`` held, together with taking the aggregator."""
        return dict(self.shipped)

    def release(self, markers: dict[str, int]) -> None:
        """``markers`` are in the store: let the WALs drop those segments."""
        by_name = {w.name: w for w in self.workers}
        for name, seg in markers.items():
            wal = self._replayed.pop(name, None)
            if wal is not None:
                wal.drop_through(seg)
                wal.close()
            w = by_name.get(name)
            if w is not None and w.alive:
                self._send(w, ("drop", seg))

    # -- stop -----------------------------------------------------------------------
    def stop_accepting(self) -> None:
        """Workers stop their servers and ship what they have left."""
        self.sync(timeout=30, op="stop")
        self.stopping = True

    def exit(self) -> None:
        for w in self.workers:
            if w.alive:
                self._send(w, ("exit",))
        for w in self.workers:
            w.proc.join(10)
            if w.proc.is_alive():
                log.error("receiver worker %d did not exit; terminating it", w.index)
                w.proc.terminate()
                w.proc.join(5)
        for wal in self._replayed.values():
            wal.close()


# -- worker process ------------------------------------------------------------------
def worker_main(index: int, conn, config, http_addr: str, grpc_addr: str, wal_dir: str | None) -> None:
    logging.basicConfig(level=getattr(logging, str(config.log.level).upper(), logging.INFO),
                        format=f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_IGN)    # main drives the shutdown over the pipe
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        asyncio.run(_worker(index, conn, config, http_addr, grpc_addr, wal_dir))
    except Exception as e:  # noqa: BLE001 - reported to main
        log.exception("receiver worker failed")
        with contextlib.suppress(Exception):
            conn.send(("error", repr(e)))


async def _worker(index: int, conn, cfg, http_addr: str, grpc_addr: str, wal_dir: str | None) -> None:

    from collector import assemble
    from collector.aggregate.aggregator import Aggregator
    from collector.auth import INGEST, BearerAuth, Tokens
    from collector.model import SeriesCatalog
    from collector.receiver.ingest import Ingest
    from collector.receiver.otlp_grpc import make_grpc_server
    from collector.receiver.otlp_http import make_otlp_http_app
    from collector.selfmetrics import SelfMetrics
    from collector.wal import WriteAheadLog

    metrics = SelfMetrics()
    aggregator = Aggregator(SeriesCatalog(), assemble.aggregator_settings(cfg))
    wal = WriteAheadLog(wal_dir) if wal_dir else None
    tokens = Tokens.from_config(cfg.auth)
    rsettings = assemble.receiver_settings(cfg)
    ingest = Ingest(aggregator, rsettings, metrics, wal=wal, wal_max_bytes=cfg.storage.wal_max_size)
    http_sock = assemble.bind(http_addr, reuseport=True, key="receivers.otlp.http.listen", first=False)
    grpc_server, _ = make_grpc_server(aggregator, rsettings, metrics, grpc_addr, ingest=ingest, tokens=tokens,
                                      reuseport=True, first=False)
    otlp_app = BearerAuth(make_otlp_http_app(aggregator, rsettings, metrics, ingest=ingest), tokens,
                          lambda method, path: INGEST)
    server = assemble.http_server(otlp_app)
    await grpc_server.start()
    http_task = asyncio.create_task(server.serve(sockets=[http_sock]))
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    stopping = []

    def ship(n: int) -> None:
        # rotate + take with no await between, like Service.flush
        seg = wal.rotate() if wal is not None else None
        conn.send(("batch", n, seg, aggregator.take_closed(force=True)))

    async def stop(n: int) -> None:
        server.should_exit = True
        await grpc_server.stop(grace=5)
        await asyncio.gather(http_task, return_exceptions=True)
        ship(n)

    def on_message() -> None:
        try:
            while conn.poll():
                msg = conn.recv()
                if msg[0] == "ship":
                    ship(msg[1])
                elif msg[0] == "drop":
                    if wal is not None:
                        wal.drop_through(msg[1])
                elif msg[0] == "stop":
                    stopping.append(asyncio.ensure_future(stop(msg[1])))
                elif msg[0] == "exit":
                    done.set()
                    return
        except (EOFError, OSError):   # main is gone: stop at once (the WAL holds what was acknowledged)
            done.set()

    loop.add_reader(conn.fileno(), on_message)
    conn.send(("ready",))
    await done.wait()
    loop.remove_reader(conn.fileno())
    if not stopping:
        server.should_exit = True
        await grpc_server.stop(grace=0)
    await asyncio.gather(http_task, *stopping, return_exceptions=True)
    if wal is not None:
        wal.close()
