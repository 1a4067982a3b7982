"""Where API queries run: never on the event loop that serves ingest and health.

At most ``max_concurrent`` queries run at once, on as many long-lived query
threads, each under a cancellation token (``collector.cancel``); up to
``max_queued`` more wait for a slot until their deadline (Prometheus's
``--query.max-concurrency`` queues the same way), and beyond that a query is
refused at once with 503. The token's deadline covers the wait and the run, as
Prometheus's query timeout does.

The threads are few and reused: glibc gives each new thread its own malloc
arena, and freed memory of many arenas is rarely handed back to the OS. After a
query that loaded much, the freed heap is returned at once.
"""
from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from collector import cancel
from collector.memory import release_memory
from collector.threads import lower_priority
from collector.query.errors import QueryError, Timeout, Unavailable, Unprocessable

# A query that loaded more samples than this gives its freed heap back to the OS.
RELEASE_AFTER_SAMPLES = 1_000_000
RELEASE_AFTER_S = 0.25
QUERY_NICE = 10
ANSWER_GRACE_S = 0.25   # past its deadline, a query is answered 503 timeout within this     # or that ran this long (its intermediate matrices were large)


class QueryGate:
    def __init__(self, max_concurrent: int = 4, max_queued: int = 64, timeout_s: float = 30,
                 max_samples: int | None = None, memory_ok: Callable[[], bool] | None = None, metrics=None,
                 nice: int = QUERY_NICE):
        if max_concurrent < 1 or max_queued < 0:
            raise ValueError("max_concurrent must be at least 1 and max_queued not negative")
        self.max_concurrent, self.max_queued = max_concurrent, max_queued
        self.timeout_s, self.max_samples, self.memory_ok = timeout_s, max_samples, memory_ok
        self.metrics = metrics
        self.nice = nice
        self._sem: asyncio.Semaphore | None = None
        self._closing: asyncio.Event | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._threads_lock = threading.Lock()
        self.running = 0
        self.waiting = 0
        self.closed = False

    def _semaphore(self) -> asyncio.Semaphore:
        if self._sem is None:   # bound to the loop that first uses it
            self._sem = asyncio.Semaphore(self.max_concurrent)
            self._closing = asyncio.Event()
        return self._sem

    def token(self, timeout_s: float | None = None) -> cancel.Token:
        t = self.timeout_s if timeout_s is None else min(timeout_s, self.timeout_s)
        return cancel.Token(timeout_s=t, max_samples=self.max_samples, memory_ok=self.memory_ok)

    async def run(self, fn: Callable[[], Any], timeout_s: float | None = None) -> Any:
        """Run ``fn`` in a query thread under a new token; QueryError on refusal,
        timeout, shutdown or budget."""
        if self.closed:
            raise Unavailable("the server is shutting down; retry on another replica")
        token = self.token(timeout_s)
        sem = self._semaphore()
        if sem.locked() and self.waiting >= self.max_queued:
            self._count("refused")
            raise Unavailable(f"too many queries: {self.max_concurrent} running and {self.waiting} queued "
                              "(query.max_concurrent, query.max_queued); retry later")
        self.waiting += 1
        self._gauge()
        try:
            remaining = max(0.0, token.deadline - time.monotonic())
            acquire = asyncio.ensure_future(sem.acquire())
            closing = asyncio.ensure_future(self._closing.wait())
            done, _ = await asyncio.wait({acquire, closing}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            closing.cancel()
            if acquire not in done:
                acquire.cancel()
                if acquire.done() and not acquire.cancelled():   # got the slot in the same instant: give it back
                    sem.release()
                if self.closed:
                    raise Unavailable("the server is shutting down; retry on another replica")
                self._count("queue_timeout")
                raise Timeout("query timed out in query queue")
        finally:
            self.waiting -= 1
        self.running += 1
        self._gauge()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def finished(_: asyncio.Future) -> None:   # the thread is free again: only now the slot
            self.running -= 1
            self._gauge()
            sem.release()

        fut.add_done_callback(finished)
        self._ensure_threads()
        self._jobs.put((fn, token, loop, fut))
        # The answer does not wait for the thread to notice its deadline: on a busy machine a
        # low-priority query thread may take a while to reach its next check. The thread
        # (and its slot) is freed when it has unwound.
        remaining = max(0.0, token.deadline - time.monotonic()) + ANSWER_GRACE_S
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout=remaining)
        except asyncio.TimeoutError:
            token.cancel(cancel.TIMEOUT)
            raise Timeout("query timed out in expression evaluation") from None
        except asyncio.CancelledError:
            token.cancel(cancel.SHUTDOWN)
            raise

    def _ensure_threads(self) -> None:
        with self._threads_lock:
            while len(self._threads) < self.max_concurrent:
                # Daemon threads: a query still unwinding never holds up the process's exit.
                t = threading.Thread(target=self._worker, name=f"tocsin-query-{len(self._threads)}", daemon=True)
                t.start()
                self._threads.append(t)

    def _worker(self) -> None:
        lower_priority(self.nice)
        while True:
            fn, token, loop, fut = self._jobs.get()
            started = time.monotonic()
            try:
                with cancel.running(token):
                    value = fn()
                ok = True
            except cancel.Cancelled as e:
                ok, value = False, _cancelled_error(e)
            except cancel.OverBudget as e:
                ok, value = False, Unprocessable(str(e))
            except BaseException as e:  # noqa: BLE001 - handed to the awaiting request
                ok, value = False, e
            heavy = token.samples >= RELEASE_AFTER_SAMPLES or time.monotonic() - started >= RELEASE_AFTER_S
            loop.call_soon_threadsafe(_deliver, fut, ok, value)
            del value
            if heavy:
                release_memory()

    def close(self) -> None:
        """Refuse new and queued queries and cancel the running ones (at shutdown;
        call on the event loop)."""
        self.closed = True
        if self._closing is not None:
            self._closing.set()
        cancel.cancel_all(cancel.SHUTDOWN)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.query_refused.labels(outcome).inc()

    def _gauge(self) -> None:
        if self.metrics is not None:
            self.metrics.queries_running.set(self.running)
            self.metrics.queries_queued.set(self.waiting)


def _deliver(fut: asyncio.Future, ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
        fut.exception()   # retrieved: the request may have been answered already (timeout)


def _cancelled_error(e: cancel.Cancelled) -> QueryError:
    if e.reason == cancel.TIMEOUT:
        return Timeout(f"query timed out in expression evaluation ({e})")
    return Unavailable(str(e))


def run_with_token(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` under the current token (or none), turning cancellation and
    budget refusals into the API's errors: for callers outside the gate."""
    try:
        return fn()
    except cancel.Cancelled as e:
        raise _cancelled_error(e) from None
    except cancel.OverBudget as e:
        raise Unprocessable(str(e)) from None
