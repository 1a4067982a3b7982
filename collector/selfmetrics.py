"""Tocsin's own metrics, exposed on ``/metrics``. One registry per service
instance (no global default registry), so tests can run several services."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class SelfMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        r = self.registry = registry or CollectorRegistry()
        # receive
        self.items_received = Counter("tocsin_items_received", "Spans, data points or log records received.",
                                      ["signal"], registry=r)
        self.items_accepted = Counter("tocsin_items_accepted", "Items accepted into the aggregator.",
                                      ["signal"], registry=r)
        self.items_rejected = Counter("tocsin_items_rejected", "Items refused, by reason.",
                                      ["signal", "reason"], registry=r)
        self.items_ignored = Counter("tocsin_items_ignored", "Items received and deliberately not used (spans of "
                                     "kind CLIENT, INTERNAL or PRODUCER), by reason. "
                                     "received = accepted + rejected + ignored.", ["signal", "reason"], registry=r)
        self.requests = Counter("tocsin_receiver_requests", "OTLP requests answered, by transport and code.",
                                ["transport", "signal", "code"], registry=r)
        self.requests_refused = Counter("tocsin_receiver_refused_requests",
                                        "Requests refused whole by backpressure, by reason.", ["signal", "reason"],
                                        registry=r)
        self.request_duration = Histogram("tocsin_receiver_request_duration_seconds",
                                          "Time to handle one OTLP request.", ["transport"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.values_clamped = Counter("tocsin_values_clamped", "Durations outside 1 µs..1 h stored at the edge.",
                                      registry=r)
        # aggregate
        self.series_active = Gauge("tocsin_series", "Series known to the aggregator.", registry=r)
        self.series_overflow = Counter("tocsin_series_overflow", "Observations folded into the overflow series "
                                       "because the metric reached its series limit.", ["metric"], registry=r)
        # store
        self.flush_duration = Histogram("tocsin_flush_duration_seconds", "Time to write one batch to the store.",
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.flush_rows = Counter("tocsin_flush_rows", "Rows written to the store.", ["kind"], registry=r)
        self.flush_failures = Counter("tocsin_flush_failures", "Flushes that failed (retried).", registry=r)
        self.wal_replayed = Counter("tocsin_wal_replayed_records", "Write-ahead log records replayed at start.",
                                    registry=r)
        self.wal_torn = Counter("tocsin_wal_torn_records", "Torn or corrupt WAL records skipped at start.",
                                registry=r)
        self.store_size = Gauge("tocsin_store_size_bytes", "Size of the store on disk.", registry=r)
        self.maintenance = Counter("tocsin_store_maintenance", "Rollup and retention work done.", ["what"],
                                   registry=r)
        # query
        self.query_duration = Histogram("tocsin_query_duration_seconds", "Query evaluation time.", ["endpoint"],
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.query_errors = Counter("tocsin_query_errors", "Queries that failed, by error type.", ["type"],
                                    registry=r)
        self.query_refused = Counter("tocsin_query_refused", "Queries refused before running, by reason "
                                     "(refused: queue full; queue_timeout: no slot before the deadline).",
                                     ["reason"], registry=r)
        self.queries_running = Gauge("tocsin_queries_running", "API queries running now.", registry=r)
        self.queries_queued = Gauge("tocsin_queries_queued", "API queries waiting for a slot.", registry=r)
        # rules
        self.rule_eval_duration = Histogram("tocsin_rule_group_duration_seconds", "Time to evaluate a rule group.",
                                            ["group"], buckets=_LATENCY_BUCKETS, registry=r)
        self.rule_eval_failures = Counter("tocsin_rule_evaluation_failures", "Rule evaluations that failed.",
                                          ["group", "rule"], registry=r)
        self.rule_eval_skipped = Counter("tocsin_rule_evaluations_skipped",
                                         "Evaluations that made no decision (below min_count or no data).",
                                         ["group", "rule", "reason"], registry=r)
        self.rule_iterations_missed = Counter("tocsin_rule_group_iterations_missed",
                                              "Evaluations of a group skipped because its previous one was "
                                              "still running (the group overran its interval).", ["rule_group"],
                                              registry=r)
        self.rule_last_eval = Gauge("tocsin_rule_group_last_evaluation_timestamp_seconds",
                                    "When the group was last evaluated.", ["group"], registry=r)
        self.alerts = Gauge("tocsin_alerts", "Alerts by state.", ["state"], registry=r)
        self.rule_data_wait = Histogram("tocsin_rule_group_data_wait_seconds",
                                        "Cluster: how long a group evaluation waited for every live replica to "
                                        "have flushed through its evaluation time.", ["group"],
                                        buckets=_LATENCY_BUCKETS, registry=r)
        self.rule_group_skipped = Counter("tocsin_rule_group_evaluations_skipped",
                                          "Group evaluations skipped whole, by reason (replicas_behind: a live "
                                          "replica had not flushed through the evaluation time within "
                                          "cluster.evaluation_wait; the alert state held).",
                                          ["rule_group", "reason"], registry=r)
        # notify
        self.notifications = Counter("tocsin_notifications", "Notifications delivered.",
                                     ["receiver", "integration"], registry=r)
        self.notifications_failed = Counter("tocsin_notifications_failed", "Notification attempts that failed.",
                                            ["receiver", "integration", "reason"], registry=r)
        self.notification_latency = Histogram("tocsin_notification_latency_seconds",
                                              "Time from enqueue to delivery.", ["integration"],
                                              buckets=_LATENCY_BUCKETS, registry=r)
        self.notification_queue = Gauge("tocsin_notification_queue_length", "Notifications waiting in the outbox.",
                                        registry=r)
        # cluster (docs/cluster.md)
        self.cluster_leader = Gauge("tocsin_cluster_leader", "1 while this replica is the leader (evaluates rules "
                                    "and sends notifications), else 0.", registry=r)
        self.cluster_epoch = Gauge("tocsin_cluster_epoch", "The leader's fencing epoch as last seen by this replica "
                                   "(incremented at each takeover).", registry=r)
        self.cluster_leader_changes = Counter("tocsin_cluster_leader_changes", "Takeovers seen by this replica "
                                              "(the epoch changed).", registry=r)
        self.cluster_replicas = Gauge("tocsin_cluster_replicas", "Live replicas (heartbeat within "
                                      "cluster.failover_timeout), as last seen by this replica.", registry=r)
        self.cluster_flush_lag = Gauge("tocsin_cluster_flush_lag_seconds", "Per replica: seconds since the time "
                                       "up to which it has flushed what it acknowledged (PostgreSQL's clock).",
                                       ["replica"], registry=r)
        self.cluster_pg_errors = Counter("tocsin_cluster_postgres_errors", "PostgreSQL errors of the cluster's "
                                         "coordination, by operation (heartbeat, leadership, listen, sync).",
                                         ["operation"], registry=r)
