"""New series created by other replicas, read into this replica's catalog so its
queries (and the leader's rules) select them. Only rows of transactions since the
last look are read (``series.txid`` against ``txid_snapshot_xmin``, see
sql/cluster.sql), so a sync costs one indexed query whatever the catalog's size."""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("tocsin.cluster")


class CatalogSync:
    def __init__(self, cstore, catalog, metrics):
        self.cstore, self.catalog, self.metrics = cstore, catalog, metrics
        self._lock = threading.Lock()
        # taken before the service loads the whole catalog: nothing created in between is missed
        self._xmin = cstore.xmin()

    def sync(self) -> int:
        """Read series created since the last call; returns how many were new here."""
        with self._lock:
            try:
                series, xmin = self.cstore.series_since(self._xmin)
            except Exception:
                self.metrics.cluster_pg_errors.labels("sync").inc()
                raise
            n = sum(1 for s in series if self.catalog.add(s))
            self._xmin = xmin
            return n
