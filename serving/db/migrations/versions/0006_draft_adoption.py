"""Draft adoption (chat-draft mode): what agents did with each draft, and the draft's text on its row.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversation_drafts") as batch:
        batch.add_column(sa.Column("answer", sa.Text(), nullable=True))
        batch.add_column(sa.Column("citations", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("answer_id", sa.String(32), nullable=True))
    op.create_table(
        "draft_adoptions",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("workspace", sa.String(200), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=False),
        sa.Column("answer_id", sa.String(32), nullable=True),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("similarity_kind", sa.String(40), nullable=True),
        sa.Column("retained", sa.Float(), nullable=True),
        sa.Column("retained_kind", sa.String(40), nullable=True),
        sa.Column("articles", sa.JSON(), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("team_id", sa.String(200), nullable=False),
        sa.Column("admin_id", sa.String(200), nullable=False),
        sa.Column("admin_name", sa.String(200), nullable=False),
        sa.Column("reply_links", sa.JSON(), nullable=False),
        sa.Column("note_part_id", sa.String(200), nullable=True),
        sa.Column("reply_part_id", sa.String(200), nullable=False),
        sa.Column("replied_at", sa.Float(), nullable=False),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_draft_adoptions"),
    )
    for col in ("workspace", "conversation_id", "answer_id", "outcome", "replied_at"):
        op.create_index(f"ix_draft_adoptions_{col}", "draft_adoptions", [col])


def downgrade() -> None:
    for col in ("workspace", "conversation_id", "answer_id", "outcome", "replied_at"):
        op.drop_index(f"ix_draft_adoptions_{col}", table_name="draft_adoptions")
    op.drop_table("draft_adoptions")
    with op.batch_alter_table("conversation_drafts") as batch:
        for col in ("answer_id", "citations", "answer"):
            batch.drop_column(col)
