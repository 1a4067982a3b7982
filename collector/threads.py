"""Thread priorities. Work that may be heavy and is never urgent (queries, store
maintenance) runs on threads with a higher nice value, so that under CPU
contention the threads serving ingest, health checks, rules and notifications
go first (issue 16: measured in bench/isolation.py)."""
from __future__ import annotations

import os
import threading


def lower_priority(nice: int) -> None:
    """Lower the calling thread's priority: Linux schedules threads by their own
    nice value, and raising it is always allowed."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        pass
