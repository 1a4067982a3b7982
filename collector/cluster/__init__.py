"""Several Tocsin replicas on one PostgreSQL (docs/cluster.md).

Every replica receives, aggregates, flushes and answers queries; exactly one,
the leader, evaluates rules and sends notifications. Coordination lives in
PostgreSQL (the store's ``cluster.py`` holds the SQL), as procrastinate does:

- ``membership``: each replica's heartbeat row (liveness on PostgreSQL's clock,
  the time up to which everything it acknowledged is flushed, its conditions);
- ``leadership``: a session advisory lock on a dedicated connection, a local
  lease, and the fencing epoch every leader write checks;
- ``gate``: rules evaluate at t only once every live replica has flushed through
  t, and read the series other replicas created (``catalogsync``);
- ``listen``: LISTEN/NOTIFY wakes replicas when silences or posted alerts change
  (polled as a fallback);
- ``node`` runs them; ``role`` switches this process's evaluator and notifier
  on and off with leadership; ``status`` is ``GET /api/v1/status/cluster``.
"""
