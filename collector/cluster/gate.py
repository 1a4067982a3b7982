"""Rules never judge partial data (docs/cluster.md): the leader evaluates a rule
group at time t only once every live replica has flushed what it acknowledged
before t — each replica's heartbeat row carries that watermark on PostgreSQL's
clock — and once the series they created are in its catalog. It waits up to
``cluster.evaluation_wait``; past it the evaluation is skipped (the alert state
holds), so a slow replica cannot make an alert fire or resolve falsely."""
from __future__ import annotations

import time
from collections.abc import Callable

from collector.store.base import StoreError


class DataGate:
    def __init__(self, cstore, catalog_sync, timings, now_s: Callable[[], float], slack_s: float = 0.0):
        self.cstore, self.catalog_sync, self.timings, self.now_s = cstore, catalog_sync, timings, now_s
        self.slack_s = slack_s   # receiver worker processes ship their data this much later

    def __call__(self, t: float) -> tuple[bool, float]:
        """(every live replica has flushed through t, seconds waited)."""
        start = time.monotonic()
        deadline = start + self.timings.evaluation_wait
        pause = 0.05
        while True:
            try:
                lag, _live = self.cstore.watermark_lag(self.timings.failover)
                # lag: server-clock seconds behind now of the slowest watermark; t is this much ago
                if lag + self.slack_s <= self.now_s() - t:
                    self.catalog_sync.sync()
                    return True, time.monotonic() - start
            except StoreError:
                pass   # PostgreSQL unreachable: rules pause (never page on missing data)
            if time.monotonic() + pause > deadline:
                return False, time.monotonic() - start
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
