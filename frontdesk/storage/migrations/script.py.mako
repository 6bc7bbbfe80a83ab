"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""
from alembic import op
import sqlalchemy as sa
import frontdesk.model.base
import frontdesk.storage.count_ddl
import frontdesk.storage.search_ddl
${imports if imports else ""}

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
    # Full-text structures the models cannot describe (FTS5, tsvector, pg_trgm).
    frontdesk.storage.search_ddl.upgrade(op)
    # The triggers that keep ticket_counts (the default views' counts) in step with tickets.
    frontdesk.storage.count_ddl.upgrade(op)


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
