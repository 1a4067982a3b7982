"""The cluster's timings, all derived from three settings (docs/cluster.md):

    heartbeat h, failover timeout F
    idle I = F - 2h   PostgreSQL ends the leader's session after I without a query
                      (idle_session_timeout): a frozen or cut-off leader's lock frees
    lease L = I - h   the leader stops acting L after its last confirmed query, so it
                      has stopped before the server can free its lock (and before a
                      takeover), whatever the two clocks say about each other
    takeover ≤ I + h  (a killed leader's socket closes at once: ≤ h)
    the leader confirms every min(h, L/2), so its lease never runs out between steps

so a stalled leader is replaced within F, and never overlaps its successor; the
fencing epoch catches what the clocks cannot (a leader stalled mid-transaction).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    heartbeat: float
    failover: float
    visibility: float
    evaluation_wait: float

    @property
    def idle(self) -> float:
        return self.failover - 2 * self.heartbeat

    @property
    def lease(self) -> float:
        return self.idle - self.heartbeat

    @property
    def confirm_every(self) -> float:
        """How often the leader confirms its lock: every heartbeat, or twice per lease
        when the lease is shorter than two heartbeats (failover_timeout near its
        minimum of 4 heartbeats), so a step that runs a little late never finds the
        lease already over."""
        return min(self.heartbeat, self.lease / 2)

    @property
    def flush_every(self) -> float:
        """Replicas flush at least this often, so a span is in the store within
        half the visibility delay."""
        return self.visibility / 2

    @property
    def catalog_every(self) -> float:
        return self.visibility / 4

    @property
    def poll_every(self) -> float:
        """Shared documents are read this often even without a notification."""
        return max(2 * self.heartbeat, 1.0)

    @staticmethod
    def from_config(c) -> "Timings":
        return Timings(float(c.heartbeat_interval), float(c.failover_timeout), float(c.visibility),
                       float(c.evaluation_wait))
