"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Expand or contract? (docs/upgrading.md) Say which, and set OLDEST_COMPATIBLE:
the oldest released head whose code still reads and writes correctly once this
migration has run (unchanged for an expand step; this revision for a contract).
"""
from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}
OLDEST_COMPATIBLE = ${repr(down_revision)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    op.execute(sa.text("INSERT INTO meta (key, value) VALUES ('schema_oldest_compatible', :v) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value").bindparams(v=OLDEST_COMPATIBLE))


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
