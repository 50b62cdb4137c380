"""The short answer shown beside an answer (serving/answer/short_answer.py): the asked table cell or quantity.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_answers", sa.Column("short_answer", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_answers", "short_answer")
