"""Initial schema: series, partitioned histogram rows and samples, the alerting
documents, WAL markers per writer, and the ``latency`` view.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
OLDEST_COMPATIBLE = "0001"


def upgrade() -> None:
    ts = TIMESTAMP(timezone=True)
    op.create_table("meta", sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text, nullable=False),
                    comment="Rollup watermarks and the schema compatibility mark (schema_oldest_compatible).")
    op.create_table("series",
                    sa.Column("series_id", sa.BigInteger, primary_key=True, autoincrement=False),
                    sa.Column("metric", sa.Text, nullable=False),
                    sa.Column("labels", JSONB, nullable=False),
                    sa.Column("kind", sa.Text, nullable=False),
                    sa.Column("unit", sa.Text), sa.Column("help", sa.Text),
                    sa.Column("created", ts, nullable=False, server_default=sa.func.now()))
    op.create_table("partitions",
                    sa.Column("name", sa.Text, primary_key=True),
                    sa.Column("kind", sa.Text, nullable=False),
                    sa.Column("res", sa.Integer, nullable=False),
                    sa.Column("start_ts", ts, nullable=False),
                    sa.Column("end_ts", ts, nullable=False))
    op.create_table("kv",
                    sa.Column("namespace", sa.Text, nullable=False),
                    sa.Column("key", sa.Text, nullable=False),
                    sa.Column("value", JSONB, nullable=False),
                    sa.Column("updated", ts, nullable=False, server_default=sa.func.now()),
                    sa.PrimaryKeyConstraint("namespace", "key"),
                    comment="Documents of the alerting side: alert state, notification log, outbox, silences.")
    op.create_table("wal_markers",
                    sa.Column("writer", sa.Text, nullable=False),
                    sa.Column("name", sa.Text, nullable=False),
                    sa.Column("segment", sa.BigInteger, nullable=False),
                    sa.Column("updated", ts, nullable=False, server_default=sa.func.now()),
                    sa.PrimaryKeyConstraint("writer", "name"))
    op.create_table("hist",
                    sa.Column("series_id", sa.BigInteger, nullable=False),
                    sa.Column("ts", ts, nullable=False),
                    sa.Column("res", sa.Integer, nullable=False),
                    sa.Column("count", sa.BigInteger, nullable=False),
                    *[sa.Column(c, sa.Float(53)) for c in ("sum", "min", "max", "p50", "p90", "p95", "p99")],
                    sa.Column("bounds", sa.LargeBinary),
                    sa.Column("buckets", sa.LargeBinary, nullable=False),
                    sa.PrimaryKeyConstraint("series_id", "res", "ts"),
                    postgresql_partition_by="RANGE (res, ts)")
    op.create_table("samples",
                    sa.Column("series_id", sa.BigInteger, nullable=False),
                    sa.Column("ts", ts, nullable=False),
                    sa.Column("value", sa.Float(53)),
                    sa.PrimaryKeyConstraint("series_id", "ts"),
                    postgresql_partition_by="RANGE (ts)")
    # The analysts' view: one row per series per stored slot (the same columns as
    # DuckDB's, labels as jsonb). Rows are merged on write, so no grouping here.
    op.execute("""CREATE VIEW latency AS
        SELECT h.ts, make_interval(secs => h.res) AS resolution, s.metric, s.labels, h.count,
               h.sum, h.min, h.max, h.p50, h.p90, h.p95, h.p99
        FROM hist h JOIN series s USING (series_id)""")
    op.execute("INSERT INTO meta (key, value) VALUES ('schema_oldest_compatible', '0001') "
               "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latency")
    for t in ("samples", "hist", "wal_markers", "kv", "partitions", "series", "meta"):
        op.drop_table(t)
