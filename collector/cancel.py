"""Cancellation and budgets for work that must never hold up ingest or paging:
queries, rule queries, store reads. A ``Token`` is what Go code passes as a
context: a deadline, a reason once cancelled, and a budget of samples and memory.

The token of the running work is thread-local (``running``), so deep code — the
query engine's loops, the store's reads — calls ``check()`` without plumbing.
A watchdog thread cancels tokens whose deadline passed and calls the interrupt
hooks registered on them (``DuckDB``'s ``interrupt``, PostgreSQL's cancel), so a
read in C code stops too; pure-Python loops stop at their next ``check()``.
"""
from __future__ import annotations

import contextlib
import threading
import time
import weakref
from collections.abc import Callable

TIMEOUT = "timeout"
SHUTDOWN = "shutdown"
MEMORY = "memory"

# A query thread yields the GIL at least this often (seconds) when it checks
# its token, so the event loop serving ingest and health gets it promptly.
YIELD_EVERY_S = 0.002


class Cancelled(Exception):
    """The work was cancelled: ``reason`` is ``timeout``, ``shutdown`` or ``memory``."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or f"cancelled ({reason})")
        self.reason = reason


class OverBudget(Exception):
    """The work would load more than its budget allows (samples or memory)."""


class Token:
    def __init__(self, timeout_s: float | None = None, max_samples: int | None = None,
                 memory_ok: Callable[[], bool] | None = None, what: str = "query"):
        self.deadline = time.monotonic() + timeout_s if timeout_s is not None else None
        self.max_samples = max_samples
        self.memory_ok = memory_ok
        self.what = what
        self.reason: str | None = None
        self.samples = 0
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._last_yield = time.monotonic()
        with _registry_lock:
            _registry.add(self)
        if self.deadline is not None:
            ensure_watchdog()

    # -- cancelling -----------------------------------------------------------
    def cancel(self, reason: str) -> None:
        with self._lock:
            if self.reason is not None:
                return
            self.reason = reason
            hooks = list(self._hooks)
        for hook in hooks:
            with contextlib.suppress(Exception):
                hook()

    def expired(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline and self.reason is None

    @contextlib.contextmanager
    def interrupts(self, hook: Callable[[], None]):
        """While inside, cancelling calls ``hook`` (e.g. a DuckDB cursor's interrupt)."""
        with self._lock:
            if self.reason is not None:
                raise Cancelled(self.reason, self.message())
            self._hooks.append(hook)
        try:
            yield
        finally:
            with self._lock:
                with contextlib.suppress(ValueError):
                    self._hooks.remove(hook)

    def message(self) -> str:
        if self.reason == TIMEOUT:
            return f"{self.what} timed out"
        if self.reason == SHUTDOWN:
            return f"{self.what} cancelled: the server is shutting down"
        return f"{self.what} cancelled ({self.reason})"

    # -- checking -------------------------------------------------------------
    def check(self) -> None:
        now = time.monotonic()
        if self.reason is None and self.deadline is not None and now >= self.deadline:
            self.cancel(TIMEOUT)
        if self.reason is not None:
            raise Cancelled(self.reason, self.message())
        if now - self._last_yield >= YIELD_EVERY_S:
            self._last_yield = now
            time.sleep(0)   # let the event loop thread take the GIL

    def check_memory(self) -> None:
        """Before a large allocation: refuse above the memory soft limit."""
        if self.memory_ok is not None and not self.memory_ok():
            raise OverBudget(f"{self.what} stopped: the process is above its memory soft limit "
                             "(limits.memory.soft_limit_mib); narrow the selector or the time range")

    def charge(self, samples: int) -> None:
        """Count samples loaded; refuse past the budget or above the memory limit."""
        self.samples += samples
        if self.max_samples is not None and self.samples > self.max_samples:
            raise OverBudget(f"{self.what} processing would load too many samples into memory "
                             f"(more than {self.max_samples}); narrow the selector or the time range")
        self.check_memory()
        self.check()


_registry: "weakref.WeakSet[Token]" = weakref.WeakSet()
_registry_lock = threading.Lock()
_local = threading.local()


def current() -> Token | None:
    return getattr(_local, "token", None)


@contextlib.contextmanager
def running(token: Token | None):
    """Make ``token`` the current one of this thread while inside."""
    prev = current()
    _local.token = token
    try:
        yield token
    finally:
        _local.token = prev


def check() -> None:
    t = current()
    if t is not None:
        t.check()


def charge(samples: int) -> None:
    t = current()
    if t is not None:
        t.charge(samples)


def check_memory() -> None:
    t = current()
    if t is not None:
        t.check_memory()
        t.check()


@contextlib.contextmanager
def interrupts(hook: Callable[[], None]):
    t = current()
    if t is None:
        yield
        return
    with t.interrupts(hook):
        yield


def cancel_all(reason: str = SHUTDOWN) -> int:
    """Cancel every live token (at shutdown). Returns how many were running."""
    with _registry_lock:
        tokens = [t for t in list(_registry) if t.reason is None]
    for t in tokens:
        t.cancel(reason)
    return len(tokens)


class _Watchdog(threading.Thread):
    """Cancels expired tokens every ``tick`` seconds, so a read stuck in C code
    is interrupted even though its thread cannot check."""

    def __init__(self, tick: float = 0.05):
        super().__init__(name="tocsin-cancel-watchdog", daemon=True)
        self.tick = tick

    def run(self) -> None:
        while True:
            time.sleep(self.tick)
            now = time.monotonic()
            with _registry_lock:
                expired = [t for t in list(_registry) if t.expired(now)]
            for t in expired:
                t.cancel(TIMEOUT)


_watchdog: _Watchdog | None = None
_watchdog_lock = threading.Lock()


def ensure_watchdog() -> None:
    global _watchdog
    with _watchdog_lock:
        if _watchdog is None or not _watchdog.is_alive():
            _watchdog = _Watchdog()
            _watchdog.start()
