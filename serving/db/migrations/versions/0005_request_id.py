"""The id of the HTTP request that produced an answer (``X-Request-ID``, also on its JSON access-log line).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_answers", sa.Column("request_id", sa.String(64), nullable=True))
    op.create_index("ix_audit_answers_request_id", "audit_answers", ["request_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_answers_request_id", table_name="audit_answers")
    op.drop_column("audit_answers", "request_id")
