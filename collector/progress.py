"""Progress lines for long work at start (WAL replay, ...), so an operator can
tell slow from hung: a line when it starts, one every few seconds with counts,
share done and rate, and one when it ends."""
from __future__ import annotations

import logging
import time
from typing import Callable


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class Progress:
    def __init__(self, log: logging.Logger, what: str, unit: str, total_bytes: int = 0, every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic):
        self.log, self.what, self.unit, self.total = log, what, unit, total_bytes
        self.every, self.clock = every_s, clock
        self.start = self.last = clock()
        self.count = self.bytes = 0

    def begin(self, detail: str) -> None:
        self.log.info("%s: %s", self.what, detail)

    def add(self, n: int = 1, nbytes: int = 0) -> None:
        self.count += n
        self.bytes += nbytes
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            share = f", {_mib(self.bytes)} of {_mib(self.total)} ({100 * self.bytes / self.total:.0f} %)" \
                if self.total else ""
            self.log.info("%s: %d %s so far%s, %.0f %s/s", self.what, self.count, self.unit, share,
                          self.count / max(now - self.start, 1e-9), self.unit)

    def end(self, extra: str = "") -> None:
        took = self.clock() - self.start
        self.log.info("%s: done, %d %s (%s) in %.1f s, %.0f %s/s%s", self.what, self.count, self.unit,
                      _mib(self.bytes), took, self.count / max(took, 1e-9), self.unit, extra)
