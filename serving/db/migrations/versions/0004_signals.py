"""The signals that decided an answer (confidence features, sentences the checks rejected) on audit_answers.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_answers", sa.Column("signals", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_answers", "signals")
