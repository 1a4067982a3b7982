"""The process's memory: its resident size, and handing freed heap back to the OS.
Shared by the ingest memory limiter and the query gate."""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable


def read_rss_bytes() -> int:
    """Resident set size of this process from /proc/self/statm (Linux)."""
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _malloc_trim() -> Callable[[], object] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return lambda: libc.malloc_trim(0)
    except (OSError, AttributeError):   # not glibc
        return None


_TRIM = _malloc_trim()


def use_system_arrow_pool() -> None:
    """Arrow buffers (every store read goes through Arrow) from the C library's
    malloc instead of pyarrow's default mimalloc pool, which kept ~90-130 MB of
    freed buffers resident after one long-range query (docs/benchmarks.md, issue
    17); glibc's are handed back by ``release_memory``. Called once at start."""
    try:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    except (ImportError, AttributeError, NotImplementedError):
        pass


def release_memory() -> None:
    """Collect garbage and hand free heap pages back to the OS. Without it RSS
    hardly ever shrinks (the service runs with MALLOC_TRIM_THRESHOLD_ high, see
    docs/performance-notes.md), so a limiter once over its soft limit would refuse forever."""
    gc.collect()
    if _TRIM is not None:
        _TRIM()
