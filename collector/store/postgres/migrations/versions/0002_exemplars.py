"""Exemplars: table ``exemplars`` partitioned by slot time, and the analysts'
``latency_exemplars`` view. An expand step: code at 0001 never reads or writes
them and keeps working beside it (its retention even drops their partitions).

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TIMESTAMP

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
OLDEST_COMPATIBLE = "0001"


def upgrade() -> None:
    ts = TIMESTAMP(timezone=True)
    op.create_table("exemplars",
                    sa.Column("series_id", sa.BigInteger, nullable=False),
                    sa.Column("ts", ts, nullable=False),
                    sa.Column("grp", sa.SmallInteger, nullable=False),
                    sa.Column("observed_at", ts, nullable=False),
                    sa.Column("value", sa.Float(53), nullable=False),
                    sa.Column("trace_id", sa.LargeBinary, nullable=False),
                    sa.Column("span_id", sa.LargeBinary, nullable=False),
                    sa.PrimaryKeyConstraint("series_id", "ts", "grp"),
                    postgresql_partition_by="RANGE (ts)",
                    comment="Exemplars: per series, slot and octave the slowest observation with a trace id "
                            "(collector/aggregate/exemplars.py); partitioned and kept like the slot-resolution rows.")
    # One row per exemplar with its series' metric and labels, ids in hex (the W3C form).
    op.execute("""CREATE VIEW latency_exemplars AS
        SELECT e.ts, e.observed_at, s.metric, s.labels, e.value, encode(e.trace_id, 'hex') AS trace_id,
               encode(e.span_id, 'hex') AS span_id
        FROM exemplars e JOIN series s USING (series_id)""")
    op.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_oldest_compatible', :v) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value").bindparams(v=OLDEST_COMPATIBLE))


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS latency_exemplars")
    op.drop_table("exemplars")
