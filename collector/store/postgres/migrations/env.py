"""Alembic environment of the PostgreSQL store. Run through ``migrate.py``
(``tocsin db ...`` and the store's ``migrate: auto``), never the ``alembic`` command:
the connection (with the migration advisory lock held) is handed in through
``config.attributes["connection"]``; offline (``--sql``) only the dialect is needed."""
from alembic import context

from collector.store.postgres.schema import metadata

config = context.config


def run_offline() -> None:
    context.configure(url="postgresql+psycopg://", literal_binds=True, target_metadata=metadata,
                      dialect_opts={"paramstyle": "named"}, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes["connection"]
    # One transaction per migration: a failure leaves the database at the last
    # complete revision. A blocked DDL fails fast instead of queueing every query
    # behind its lock (docs/upgrading.md).
    context.configure(connection=connection, target_metadata=metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
