"""Webhook deliveries and posted notes (idempotency of the Intercom webhook worker, serving/channels/intercom/).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("notification_id", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(100), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("deliveries", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("outcome", sa.String(200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("notification_id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index(op.f("ix_webhook_deliveries_status"), "webhook_deliveries", ["status"])
    op.create_table(
        "conversation_drafts",
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("conversation_id", sa.String(100), nullable=False),
        sa.Column("part_id", sa.String(200), nullable=False),
        sa.Column("ref", sa.String(40), nullable=False),
        sa.Column("notification_id", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message_type", sa.String(16), nullable=True),
        sa.Column("note_part_id", sa.String(200), nullable=True),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("reason", sa.String(40), nullable=True),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("posted_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_conversation_drafts")),
    )
    op.create_index(op.f("ix_conversation_drafts_conversation_id"), "conversation_drafts", ["conversation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_conversation_drafts_conversation_id"), table_name="conversation_drafts")
    op.drop_table("conversation_drafts")
    op.drop_index(op.f("ix_webhook_deliveries_status"), table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
