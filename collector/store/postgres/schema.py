"""The PostgreSQL schema at the newest migration, in SQLAlchemy Core.

This module describes; Alembic migrations (``migrations/versions``) change the
database, each frozen once released. A test compares a freshly migrated database
with this metadata, so the two cannot drift. The ``latency`` view and the time
partitions (created at run time by ``partitions.py``) are not in the metadata.

Series ids are uint64 in Tocsin and stored as ``bigint`` with the same 64 bits.
Histogram rows are partitioned by ``RANGE (res, ts)``: one partition per
resolution and period (an hour of 10 s slots, a day of minutes, 30 days of hours),
so retention drops whole tables and a read touches only the periods it asks for.
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, CheckConstraint, Column, Float, Index, Integer, LargeBinary, MetaData,
                        PrimaryKeyConstraint, SmallInteger, Table, Text, func, text)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    comment="Rollup watermarks and the schema compatibility mark (schema_oldest_compatible).")

series = Table(
    "series", metadata,
    Column("series_id", BigInteger, primary_key=True, autoincrement=False),
    Column("metric", Text, nullable=False),
    Column("labels", JSONB, nullable=False),
    Column("kind", Text, nullable=False),
    Column("unit", Text),
    Column("help", Text),
    Column("created", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    # the creating transaction (txid_current()): replicas read the series created since they last looked
    Column("txid", BigInteger, server_default=text("txid_current()")),
    Index("series_txid_idx", "txid"))

partitions = Table(
    "partitions", metadata,
    Column("name", Text, primary_key=True),
    Column("kind", Text, nullable=False),          # 'hist' | 'samples' | 'exemplars'
    Column("res", Integer, nullable=False),        # seconds; 0 for samples
    Column("start_ts", TIMESTAMP(timezone=True), nullable=False),
    Column("end_ts", TIMESTAMP(timezone=True), nullable=False))

kv = Table(
    "kv", metadata,
    Column("namespace", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("value", JSONB, nullable=False),
    Column("updated", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("namespace", "key"),
    comment="Documents of the alerting side: alert state, notification log, outbox, silences.")

wal_markers = Table(
    "wal_markers", metadata,
    Column("writer", Text, nullable=False),        # the process (replica) whose write-ahead log this is
    Column("name", Text, nullable=False),          # '' for its own WAL, 'worker-<i>' for receiver workers
    Column("segment", BigInteger, nullable=False),
    Column("updated", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("writer", "name"))

hist = Table(
    "hist", metadata,
    Column("series_id", BigInteger, nullable=False),
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("res", Integer, nullable=False),
    Column("count", BigInteger, nullable=False),
    Column("sum", Float(53)),
    Column("min", Float(53)),
    Column("max", Float(53)),
    Column("p50", Float(53)),
    Column("p90", Float(53)),
    Column("p95", Float(53)),
    Column("p99", Float(53)),
    Column("bounds", LargeBinary),                 # custom buckets: float64 LE; NULL for HDR rows
    Column("buckets", LargeBinary, nullable=False),  # (u16 index, u32 count) entries, see codec.py
    PrimaryKeyConstraint("series_id", "res", "ts"),
    postgresql_partition_by="RANGE (res, ts)")

samples = Table(
    "samples", metadata,
    Column("series_id", BigInteger, nullable=False),
    Column("ts", TIMESTAMP(timezone=True), nullable=False),
    Column("value", Float(53)),
    PrimaryKeyConstraint("series_id", "ts"),
    postgresql_partition_by="RANGE (ts)")

exemplars = Table(
    "exemplars", metadata,
    Column("series_id", BigInteger, nullable=False),
    Column("ts", TIMESTAMP(timezone=True), nullable=False),           # the slot
    Column("grp", SmallInteger, nullable=False),                      # octave of the value
    Column("observed_at", TIMESTAMP(timezone=True), nullable=False),
    Column("value", Float(53), nullable=False),
    Column("trace_id", LargeBinary, nullable=False),                  # 16 bytes
    Column("span_id", LargeBinary, nullable=False),                   # 8 bytes
    PrimaryKeyConstraint("series_id", "ts", "grp"),
    postgresql_partition_by="RANGE (ts)",
    comment="Exemplars: per series, slot and octave the slowest observation with a trace id "
            "(collector/aggregate/exemplars.py); partitioned and kept like the slot-resolution rows.")

cluster_replicas = Table(
    "cluster_replicas", metadata,
    Column("replica", Text, primary_key=True),
    Column("instance", Text, nullable=False),      # random per process start: a second process with one id is refused
    Column("started_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("heartbeat_at", TIMESTAMP(timezone=True), nullable=False, server_default=func.now()),
    Column("flushed_through", TIMESTAMP(timezone=True)),   # everything acknowledged before it is stored
    Column("address", Text, nullable=False, server_default=""),
    Column("version", Text, nullable=False, server_default=""),
    Column("conditions", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    comment="One row per running replica: heartbeat, flush watermark, self-alert conditions.")

cluster_leader = Table(
    "cluster_leader", metadata,
    Column("id", SmallInteger, primary_key=True, autoincrement=False),
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    Column("replica", Text),
    Column("since", TIMESTAMP(timezone=True)),
    CheckConstraint("id = 1", name="cluster_leader_one_row"),
    comment="The leader and its fencing epoch (incremented at each takeover).")
