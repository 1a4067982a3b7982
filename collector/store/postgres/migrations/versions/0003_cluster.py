"""Cluster: replicas' heartbeat rows, the leader's fencing epoch, new-series
tracking and notifications of shared documents.

Revision ID: 0003
Revises: 0002

Expand (docs/upgrading.md): two new tables, a nullable column with a default
on ``series`` (old code names its columns, so its inserts get the default), an
index built concurrently, and triggers that only add ``NOTIFY``s. Code at 0001
and 0002 keeps reading and writing: OLDEST_COMPATIBLE stays 0001.

- ``cluster_replicas``: one row per running replica (its heartbeat, the time up
  to which everything it acknowledged is flushed, its self-alert conditions).
- ``cluster_leader``: one row; ``epoch`` is incremented by each new leader in
  the transaction in which it takes over (the fencing token).
- ``series.txid``: the id of the transaction that created the row, so replicas
  read only the series created since their last look (``txid_snapshot_xmin``).
- triggers on ``kv``: a write to the ``silences`` or ``posted_alerts``
  namespace notifies channel ``tocsin_kv`` (payload: the namespace) at commit,
  whoever wrote it — a replica of an older release too.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
OLDEST_COMPATIBLE = "0001"

NOTIFIED_NAMESPACES = ("silences", "posted_alerts")


def upgrade() -> None:
    ts = TIMESTAMP(timezone=True)
    op.create_table("cluster_replicas",
                    sa.Column("replica", sa.Text, primary_key=True),
                    sa.Column("instance", sa.Text, nullable=False),
                    sa.Column("started_at", ts, nullable=False, server_default=sa.func.now()),
                    sa.Column("heartbeat_at", ts, nullable=False, server_default=sa.func.now()),
                    sa.Column("flushed_through", ts),
                    sa.Column("address", sa.Text, nullable=False, server_default=""),
                    sa.Column("version", sa.Text, nullable=False, server_default=""),
                    sa.Column("conditions", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
                    comment="One row per running replica: heartbeat, flush watermark, self-alert conditions.")
    op.create_table("cluster_leader",
                    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
                    sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
                    sa.Column("replica", sa.Text),
                    sa.Column("since", ts),
                    sa.CheckConstraint("id = 1", name="cluster_leader_one_row"),
                    comment="The leader and its fencing epoch (incremented at each takeover).")
    op.execute("INSERT INTO cluster_leader (id, epoch) VALUES (1, 0) ON CONFLICT (id) DO NOTHING")
    # Nullable, no default first (instant), then the default for new rows only: no table rewrite.
    op.add_column("series", sa.Column("txid", sa.BigInteger, nullable=True))
    op.execute("ALTER TABLE series ALTER COLUMN txid SET DEFAULT txid_current()")
    names = ", ".join(f"'{n}'" for n in NOTIFIED_NAMESPACES)
    op.execute("""CREATE FUNCTION tocsin_kv_notify_v1() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('tocsin_kv', CASE WHEN TG_OP = 'DELETE' THEN OLD.namespace ELSE NEW.namespace END);
            RETURN NULL;
        END $$""")
    op.execute(f"""CREATE TRIGGER kv_notify_write AFTER INSERT OR UPDATE ON kv FOR EACH ROW
        WHEN (NEW.namespace IN ({names})) EXECUTE FUNCTION tocsin_kv_notify_v1()""")
    op.execute(f"""CREATE TRIGGER kv_notify_delete AFTER DELETE ON kv FOR EACH ROW
        WHEN (OLD.namespace IN ({names})) EXECUTE FUNCTION tocsin_kv_notify_v1()""")
    op.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_oldest_compatible', :v) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value").bindparams(v=OLDEST_COMPATIBLE))
    # Outside the transaction: writers of series are not blocked while it builds.
    with op.get_context().autocommit_block():
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS series_txid_idx ON series (txid)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS series_txid_idx")
    op.execute("DROP TRIGGER IF EXISTS kv_notify_delete ON kv")
    op.execute("DROP TRIGGER IF EXISTS kv_notify_write ON kv")
    op.execute("DROP FUNCTION IF EXISTS tocsin_kv_notify_v1()")
    op.drop_column("series", "txid")
    op.drop_table("cluster_leader")
    op.drop_table("cluster_replicas")
