"""``tocsin serve``: wires receive → aggregate → store → query and
rules → evaluate → notify into one process, and runs them until SIGTERM."""
from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from typing import Callable

import numpy as np
from opentelemetry.trace import StatusCode

from collector import assemble, cancel
from collector.aggregate.aggregator import Aggregator
from collector.config import Config
from collector.listen import StartupError
from collector.memory import release_memory
from collector.model import HISTOGRAM_KINDS, KIND_GAUGE, NS, SeriesCatalog, make_labels
from collector.query.gate import QueryGate
from collector.query.source import LiveSource
from collector import __version__
from collector.selfmetrics import SelfMetrics
from collector.selftrace import build_tracer, loops_back
from collector.threads import lower_priority
from collector.progress import Progress
from collector.store.base import StoreError, StoreUnavailable, WriteOutcomeUnknown
from collector.wal import RECORD_OVERHEAD as WAL_RECORD_OVERHEAD, WriteAheadLog
from collector.workers import SHIP_EVERY_S, WorkerPool, worker_dirs

log = logging.getLogger("tocsin")


@contextlib.asynccontextmanager
async def _step(what: str):
    """A step of the shutdown; one that takes long says what it waited for."""
    t0 = time.monotonic()
    yield
    took = time.monotonic() - t0
    if took >= 1.0:
        log.info("stopping: waited %.1fs for %s", took, what)


def _exit_after(deadline: float, grace: float) -> None:
    """SIGTERM is obeyed within ``shutdown.grace`` whatever is still running: past
    it the process exits (what was acknowledged is in the write-ahead log)."""
    def run() -> None:
        time.sleep(max(0.0, deadline - time.monotonic()))
        log.error("shutdown took longer than shutdown.grace (%gs): exiting now; acknowledged data is in the "
                  "write-ahead log and is replayed at the next start", grace)
        for h in logging.getLogger().handlers:
            with contextlib.suppress(Exception):
                h.flush()
        os._exit(1)

    threading.Thread(target=run, name="tocsin-shutdown-deadline", daemon=True).start()


RELEASE_AFTER_ROWS = 50_000  # a backlog flush of at least this many histogram rows hands freed heap back
TEMPORALITY = "temporality"  # store namespace of the receivers' cumulative/delta conversion state


def is_backlog(hist) -> bool:
    """A flush of late data or of a replayed WAL (many rows over more than a minute of
    slots), not a steady flush of the open slots: only then is the heap trimmed after
    it (a trim every flush at 100 000 active series would fault the pages back in at once)."""
    return len(hist) >= RELEASE_AFTER_ROWS and int(hist.ts.max()) - int(hist.ts.min()) > 60 * NS


class Service:
    def __init__(self, config: Config, clock: Callable[[], int] = time.time_ns, config_path: str | None = None,
                 store_wait_s: float = 0.0):
        from alerting.evaluate.manager import RuleManager
        from collector.query.engine import Engine

        self.config = config
        self.clock = clock
        self.metrics = SelfMetrics()
        self.store = assemble.open_store(config, writer=assemble.replica_id(config), wait_s=store_wait_s)
        self.catalog = SeriesCatalog()
        # cluster.enabled: this process is one replica of several (collector/cluster); None otherwise
        self.cluster = assemble.cluster_node(config, self.store, self.catalog, self.metrics, self.now_s)
        for s in self.store.load_series():
            self.catalog.add(s)
        self.aggregator = Aggregator(
            self.catalog, assemble.aggregator_settings(config), clock=clock,
            on_overflow=lambda metric: self.metrics.series_overflow.labels(metric).inc())
        self.head = assemble.head(config, clock)
        if self.head is not None:
            self._load_head()
        self.source = LiveSource(self.store, self.aggregator, self.head)
        q = config.query
        self.engine = Engine(self.source, lookback_s=q.lookback_delta, max_samples=q.max_samples,
                             timeout_s=q.timeout, clock=self.now_s, classic_buckets=q.classic_buckets)
        self.notifier = self.make_notifier(config.notify)
        self.evaluator = RuleManager(self.store, query=self.engine.instant_vector, record=self.record_sample,
                                     notify=lambda alerts: self.notifier.submit(alerts), metrics=self.metrics,
                                     clock=self.now_s, external_url=config.api.external_url,
                                     default_interval=config.rules.evaluation_interval, query_timeout=q.timeout,
                                     exemplars=self.exemplars, **assemble.evaluator_cluster_args(self.cluster))
        from collector.selfwatch import SelfWatch

        self.selfwatch = SelfWatch(self)   # self-alerts and the Watchdog (self_alerts.enabled)
        if self.cluster is not None:
            self.cluster.conditions = self.selfwatch.published
        self.tracer, self._tracer_provider = build_tracer(config.self_telemetry, __version__)
        wal_dir = assemble.wal_dir(config)
        self.wal = WriteAheadLog(wal_dir) if wal_dir else None
        self._in_doubt: list = []        # batches whose commit failed half-way: stored or not, see flush
        self.store_problem: tuple[float, str] | None = None   # (since, what) while flushes fail
        self.ingest = None
        self._unsaved_state: dict[str, dict] = {}  # temporality documents of a flush that failed
        self.config_path = config_path
        self._notifier_running = False
        self.started = False   # True once listening: a failure after that is not a failure to start
        self.workers = None   # collector.workers.WorkerPool when receivers.processes > 1
        self.addresses: dict[str, str] = {}
        self.query_gate: QueryGate | None = None
        # Maintenance has a thread of its own, at the queries' lower priority: it never
        # takes a thread flushes need, nor CPU ingest needs.
        self._maintenance_thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="tocsin-maintain", initializer=lower_priority,
            initargs=(config.query.nice,))
        self.started_at = time.time()
        self.last_reload: tuple[float, bool] = (self.started_at, True)   # /api/v1/status/runtimeinfo
        self._stop = asyncio.Event()
        self._flush_lock = asyncio.Lock()

    def make_notifier(self, notify_config):
        """A notifier on the store (in a cluster: fenced by the leader's epoch)."""
        from alerting.notify.notifier import Notifier

        return Notifier(notify_config, self.store, self.metrics, clock=self.now_s,
                        fence=self.cluster.fence if self.cluster is not None else None,
                        shared_posts=self.cluster is not None)

    def now_s(self) -> float:
        """The service clock in seconds (engine, evaluator and notifier use it)."""
        return self.clock() / NS

    # -- called by the evaluator ----------------------------------------------
    def exemplars(self, selector: str, start_s: float, end_s: float) -> list[dict]:
        """Example traces for latency pages: /api/v1/query_exemplars' answer."""
        from collector.query.engine import _parse
        from collector.query.exemplars import query_exemplars

        return query_exemplars(self.engine, _parse(selector), start_s, end_s)

    def record_sample(self, metric: str, labels: dict[str, str], t: float, value: float) -> None:
        """Recorded series and ALERTS go through the aggregator like any sample."""
        self.aggregator.record_samples(metric, KIND_GAUGE, [make_labels(labels)], np.zeros(1, np.int64),
                                       np.array([int(t * NS)], np.int64), np.array([value]), check_time=False)

    def reload(self) -> list[str]:
        errors = self._reload()
        self.last_reload = (time.time(), not errors)   # /api/v1/status/runtimeinfo
        return errors

    def _reload(self) -> list[str]:
        """Re-read the config file's `rules` and `notify` sections and the rule files,
        all or nothing: everything that can fail (the file, secrets, notifier clients,
        rule files) is done before anything live changes. Returns the errors.
        Other sections (listeners, storage, ...) take effect at the next start."""
        from collector.config import ConfigError, read_config
        from collector.secrets import SecretError

        config, locator = self.config, None
        if self.config_path:
            try:
                loaded = read_config(self.config_path)
            except ConfigError as e:
                return list(e.errors)   # each already says where: file:line:col or the variable
            config, locator = loaded.config, loaded.locator
        notifier = None
        if config.notify != self.config.notify:
            try:
                notifier = self.make_notifier(config.notify)
            except SecretError as e:
                return [locator.key_line(e.key, e.reason) if locator else str(e)]
            except Exception as e:  # a bad client setting: keep the running notifier
                return [f"notify: {e}"]
        errors = self.evaluator.load(config.rules.files)
        if errors:
            return errors
        if notifier is not None:
            old, self.notifier = self.notifier, notifier
            if self._notifier_running:
                old.stop()
                notifier.start()
            log.info("notification receivers and routes reloaded")
        self.config = self.config.model_copy(update={"rules": config.rules, "notify": config.notify})
        return []

    def _load_head(self) -> None:
        """The head starts from what the store holds for its span; flushes add to it."""
        ids = np.array(sorted(s.id for s in self.catalog.all() if s.kind in HISTOGRAM_KINDS), np.uint64)
        try:
            self.head.load(self.store, ids)
        except StoreError as e:   # serve without it: every read goes to the store
            log.warning("query head not loaded, queries read the store: %s", e)
            self.head = None

    # -- background work ------------------------------------------------------
    async def flush(self, force: bool = False) -> None:
        """Write what the aggregator holds. With the WAL on, every slot is written
        (open ones too: the store merges a slot written twice), in the same
        transaction as the WAL marker, so replay after a crash is exactly-once."""
        async with self._flush_lock:
            if self._in_doubt and not await self._resolve_in_doubt():
                return
            taken_at = self.now_s()    # everything acknowledged before this is in the batch
            if self.wal is not None:
                # rotate + take with no await between: no request can slip in between them
                with self.workers.absorb_lock if self.workers is not None else contextlib.nullcontext():
                    segment = self.wal.rotate()
                    batch = dataclasses.replace(self.aggregator.take_closed(force=True), wal_segment=segment)
                    if self.workers is not None:   # the worker WAL segments main has absorbed
                        batch = dataclasses.replace(batch, wal_markers=self.workers.markers())
            else:
                segment = None
                batch = self.aggregator.take_closed(force=force)
            if self.ingest is not None:  # temporality state as of this take, in the same transaction
                docs = {**self._unsaved_state, **self.ingest.take_temporality()}
                batch = dataclasses.replace(batch, documents={TEMPORALITY: docs} if docs else {})
            if not (batch.series or len(batch.hist) or len(batch.samples) or len(batch.exemplars) or segment
                    or batch.documents):
                self._flushed_through(taken_at)
                return
            t0 = time.perf_counter()
            span = self.tracer.start_span("tocsin.flush", attributes={
                "tocsin.rows.hist": len(batch.hist), "tocsin.rows.samples": len(batch.samples),
                "tocsin.series.new": len(batch.series)})
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception as e:
                self._flush_failed(e)
                if isinstance(e, WriteOutcomeUnknown) and batch.wal_segment is not None:
                    self._in_doubt.append(batch)   # resolved against the store's WAL marker once it is back
                else:
                    self.aggregator.putback(batch)
                    self._unsaved_state = batch.documents.get(TEMPORALITY, {})
                span.set_status(StatusCode.ERROR)
                span.end()
                return
            span.end()
            self._unsaved_state = {}
            self._stored(batch)
            self._flushed_through(taken_at)
            self.metrics.flush_duration.observe(time.perf_counter() - t0)
            self.metrics.flush_rows.labels("hist").inc(len(batch.hist))
            self.metrics.flush_rows.labels("samples").inc(len(batch.samples))
            self.metrics.series_active.set(self.aggregator.series_count())

    def _write(self, batch) -> None:
        self.store.write(batch)
        if is_backlog(batch.hist):   # hand its buffers back (see _maintain)
            release_memory()

    def _flushed_through(self, taken_at: float) -> None:
        """A cluster's rules wait for every replica's flush watermark (cluster/gate.py)."""
        if self.cluster is not None:
            self.cluster.flushed(taken_at)

    def _stored(self, batch) -> None:
        """The batch is in the store: its WAL segments (and workers') can go."""
        if self.store_problem is not None:
            log.info("the store accepts writes again (%s); the backlog is written", self.store.describe())
        self.store_problem = None
        if self.head is not None:
            self.head.add(batch.hist)
        if batch.wal_segment is not None:
            self.wal.drop_through(batch.wal_segment)
        if batch.wal_markers:
            self.workers.release(batch.wal_markers)

    def _flush_failed(self, e: Exception) -> None:
        self.metrics.flush_failures.inc()
        held = f"; the write-ahead log holds {self.wal.size_bytes >> 20} MiB" if self.wal is not None else ""
        if isinstance(e, StoreUnavailable):   # expected while the database is down: one line, no traceback
            if self.store_problem is None:
                self.store_problem = (time.time(), str(e))
            log.warning("flush failed, the batch is kept and retried: %s%s", e, held)
        else:
            self.store_problem = self.store_problem or (time.time(), f"{type(e).__name__}: {e}")
            log.exception("flush failed; the batch stays in memory and is retried%s", held)

    async def _resolve_in_doubt(self) -> bool:
        """A commit that failed half-way may have been stored. The store's WAL
        marker says: at or past the batch's segment, it was (drop it); else it was
        not (put it back and write it again). False while the store is still down."""
        try:
            marker = await asyncio.to_thread(self.store.wal_marker)
        except StoreError as e:
            self._flush_failed(e)
            return False
        for batch in self._in_doubt:
            if marker >= batch.wal_segment:
                log.info("a flush whose commit was interrupted was stored (WAL segment %d)", batch.wal_segment)
                self._stored(batch)
            else:
                self.aggregator.putback(batch)
                self._unsaved_state = {**batch.documents.get(TEMPORALITY, {}), **self._unsaved_state}
        self._in_doubt = []
        return True

    def not_ready(self) -> list[str]:
        """Why /-/ready says no: empty when ready."""
        reasons = []
        if self.store_problem is not None:
            since, what = self.store_problem
            reasons.append(f"the store has not accepted writes for {time.time() - since:.0f} s ({what}); "
                           "acknowledged data is held in the write-ahead log")
        if self.ingest is not None and self.wal is not None and self.ingest.wal_max_bytes \
                and self.wal.size_bytes >= self.ingest.wal_max_bytes:
            reasons.append(f"the write-ahead log is full ({self.wal.size_bytes >> 20} MiB, storage.wal_max_size): "
                           "ingest is refused with 503 until the store is back")
        return reasons

    async def _replay_wal(self) -> None:
        """Re-apply what was acknowledged but not yet in the store, then persist it."""
        if self.wal is None:
            return
        marker = self.store.wal_marker()
        segments, size = self.wal.replay_size(marker)
        progress = Progress(log, "write-ahead log replay", "records", size)
        if segments:
            progress.begin(f"{segments} segments, {size / (1 << 20):.1f} MiB in {self.wal.dir}")
        for rec in self.wal.replay(after=marker):
            self.ingest.replay(rec)
            progress.add(1, len(rec.payload) + WAL_RECORD_OVERHEAD)
        n = progress.count
        if self.workers is not None:
            n += self.workers.replay()
        if segments or self.wal.torn_records:
            progress.end(f"; {self.wal.torn_records} torn records skipped")
        self.metrics.wal_replayed.inc(n)
        self.metrics.wal_torn.inc(self.wal.torn_records)
        await self.flush()

    async def _every(self, seconds: float, fn) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=seconds)
            if self._stop.is_set():
                return
            try:
                await fn()
            except StoreUnavailable as e:   # the database is down: say so in one line, retry next round
                log.warning("%s skipped: %s", getattr(fn, "__name__", "background task").strip("_"), e)
            except Exception:
                log.exception("background task failed")

    async def _maintain(self) -> None:
        def work():
            # Its own token: a shutdown stops it between two units (each is one transaction).
            with cancel.running(cancel.Token(what="store maintenance")):
                done = self.store.maintain(self.clock())
            if any(done.values()):
                # A pass that rewrote or rolled up rows freed its buffers; the service runs
                # with MALLOC_TRIM_THRESHOLD_ high, so without this the heap stays at the
                # pass's peak (PostgreSQL backend after a 6 h backlog: 769 MB steady
                # instead of 341 MB; docs/benchmarks.md, issue 17).
                release_memory()
            return done

        with self.tracer.start_as_current_span("tocsin.store.maintain") as span:
            try:
                done = await asyncio.get_running_loop().run_in_executor(self._maintenance_thread, work)
            except cancel.Cancelled:
                log.info("store maintenance stopped for shutdown; it goes on at the next start")
                return
            span.set_attributes({f"tocsin.{k}": v for k, v in done.items()})
        for what, n in done.items():
            self.metrics.maintenance.labels(what).inc(n)
        self.metrics.store_size.set(self.store.size_bytes())

    # -- run ------------------------------------------------------------------
    async def run(self) -> None:
        from collector.api.server import make_api_app
        from collector.auth import INGEST, BearerAuth, Tokens, api_kind, exposure_errors
        from collector.receiver.ingest import Ingest
        from collector.receiver.limits import MemoryGuard
        from collector.receiver.otlp_grpc import make_grpc_server
        from collector.receiver.otlp_http import make_otlp_http_app

        cfg = self.config
        tokens = Tokens.from_config(cfg.auth)
        problems = exposure_errors(cfg, tokens)
        if problems:
            raise StartupError("refusing to start: " + "; ".join(problems))
        errors = self.reload()
        if errors:
            from collector.config import ConfigError
            raise ConfigError(self.config_path or "<defaults>", errors)   # rule files: each error located
        rsettings = assemble.receiver_settings(cfg)
        self.ingest = Ingest(self.aggregator, rsettings, self.metrics, wal=self.wal, tracer=self.tracer,
                             wal_max_bytes=cfg.storage.wal_max_size)
        self.ingest.restore_temporality(self.store.kv_list(TEMPORALITY))
        procs = cfg.receivers.processes
        # Listeners first: a taken port is reported before a long WAL replay, not after.
        http_sock = assemble.bind(cfg.receivers.otlp.http.listen, reuseport=procs > 1, key="receivers.otlp.http.listen")
        api_sock = assemble.bind(cfg.api.listen, key="api.listen")
        grpc_server, grpc_port = make_grpc_server(self.aggregator, rsettings, self.metrics,
                                                  cfg.receivers.otlp.grpc.listen, ingest=self.ingest, tokens=tokens,
                                                  reuseport=procs > 1)
        ghost, _ = assemble.split_listen(cfg.receivers.otlp.grpc.listen)
        self.addresses = {"otlp_grpc": f"{ghost}:{grpc_port}", "otlp_http": assemble.sock_address(http_sock),
                          "api": assemble.sock_address(api_sock)}
        if loops_back(cfg.self_telemetry.traces_endpoint, self.addresses):
            raise StartupError(f"refusing to start: self_telemetry.traces_endpoint {cfg.self_telemetry.traces_endpoint} "
                               "is this Tocsin's own OTLP receiver; it would trace its own ingestion forever. "
                               "Send Tocsin's traces to another collector.")
        if procs > 1 or (self.wal is not None and worker_dirs(self.wal.dir)):
            self.workers = WorkerPool(self)   # also replays worker WALs left by an earlier run
        await self._replay_wal()

        self.query_gate = QueryGate(max_concurrent=cfg.query.max_concurrent, max_queued=cfg.query.max_queued,
                                    timeout_s=cfg.query.timeout, max_samples=cfg.query.max_samples,
                                    memory_ok=self.ingest.limiter.memory_below_soft, metrics=self.metrics,
                                    nice=cfg.query.nice)
        otlp_app = BearerAuth(make_otlp_http_app(self.aggregator, rsettings, self.metrics, ingest=self.ingest),
                              tokens, lambda method, path: INGEST)
        api_app = MemoryGuard(BearerAuth(make_api_app(self), tokens, api_kind), self.ingest.limiter)
        grpc_at = self.addresses["otlp_grpc"]
        servers = [assemble.http_server(otlp_app, f"the OTLP/HTTP port {self.addresses['otlp_http']}",
                                        f"point gRPC exporters at {grpc_at}, or send http/protobuf to this port"),
                   assemble.http_server(api_app, f"the API port {self.addresses['api']}",
                                        f"OTLP/gRPC goes to {grpc_at}, OTLP/HTTP to {self.addresses['otlp_http']}")]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._stop.set)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)

        await grpc_server.start()
        if procs > 1:
            await asyncio.to_thread(self.workers.start, procs - 1, self.addresses["otlp_http"],
                                    f"[{ghost}]:{grpc_port}" if ":" in ghost else self.addresses["otlp_grpc"])
            self.source.sync = self.workers.sync
        tasks = [asyncio.create_task(servers[0].serve(sockets=[http_sock])),
                 asyncio.create_task(servers[1].serve(sockets=[api_sock])),
                 asyncio.create_task(self._every(assemble.flush_interval(cfg), self.flush)),
                 asyncio.create_task(self._every(cfg.storage.maintenance_interval, self._maintain))]
        if procs > 1:
            tasks.append(asyncio.create_task(self._every(SHIP_EVERY_S, self._ship)))
        if cfg.self_alerts.enabled:
            every = min(5.0, float(cfg.cluster.heartbeat_interval)) if self.cluster is not None else 5.0
            tasks.append(asyncio.create_task(self._every(every, self._self_alerts)))
        if self.cluster is not None:   # the leader evaluates and notifies (cluster/role.py)
            from collector.cluster.role import ServiceRole

            self.cluster.start(ServiceRole(self), cfg.cluster.advertise_url or f"http://{self.addresses['api']}")
        else:
            self.notifier.start()
            self._notifier_running = True
            self.evaluator.start()
        self.started = True
        logging.getLogger("tocsin.listen").info("listening " + " ".join(f"{k}={v}" for k, v in self.addresses.items()))
        await self._stop.wait()

        grace = cfg.shutdown.grace
        deadline = time.monotonic() + grace
        _exit_after(deadline, grace)
        log.info("stopping: no new requests, finishing those in flight, cancelling queries")
        self.query_gate.close()          # running and queued queries answer 503 at once
        cancel.cancel_all()              # rule queries and store maintenance stop at their next check
        for s in servers:
            s.should_exit = True
        async with _step("OTLP/gRPC requests in flight"):
            await grpc_server.stop(grace=min(5.0, max(0.0, deadline - time.monotonic())))
        async with _step("HTTP requests in flight"):
            await asyncio.gather(*tasks[:2], return_exceptions=True)
        if self.workers is not None:
            async with _step("receiver workers' last data"):
                await asyncio.to_thread(self.workers.stop_accepting)
        if self.cluster is not None:   # no new election or role switch from here on
            async with _step("the cluster's role switches"):
                await asyncio.to_thread(self.cluster.resign)
        async with _step("rule evaluations"):
            await asyncio.to_thread(self.evaluator.stop)
        async with _step("the last flush"):
            await self.flush(force=True)
        if self.workers is not None:
            await asyncio.to_thread(self.workers.exit)
        async with _step("notifications in flight"):
            await asyncio.to_thread(self.notifier.stop)
        if self.cluster is not None:
            async with _step("leaving the cluster"):
                await asyncio.to_thread(self.cluster.stop)
        for t in tasks[2:]:
            t.cancel()
        if self.wal is not None:
            self.wal.close()
        self._maintenance_thread.shutdown(wait=False, cancel_futures=True)
        async with _step("the store (a maintenance unit in progress)"):
            await asyncio.to_thread(self.store.close)
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()
        log.info("stopped")

    async def _self_alerts(self) -> None:
        await asyncio.to_thread(self.selfwatch.tick)

    async def _ship(self) -> None:
        """Receiver workers ship what they hold, so rules and flushes see it."""
        self.workers.check()
        await asyncio.to_thread(self.workers.sync)

    def _on_sighup(self) -> None:
        asyncio.get_running_loop().run_in_executor(None, self._reload_and_log)  # reload blocks: not on the loop

    def _reload_and_log(self) -> None:
        errors = self.reload()
        if errors:
            log.error("reload failed, keeping the previous rules and notifications:\n  %s", "\n  ".join(errors))
        else:
            log.info("rules and notifications reloaded")

    def stop(self) -> None:
        self._stop.set()
