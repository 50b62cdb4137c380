"""Audit log, feedback and API keys (serving/audit/, serving/api/auth.py).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_answers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("workspace", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("conversation_id", sa.String(200), nullable=True),
        sa.Column("locale", sa.String(16), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("redactions", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("confidence_kind", sa.String(40), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("handoff_summary", sa.Text(), nullable=True),
        sa.Column("generator", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("latency_ms", sa.JSON(), nullable=False),
        sa.Column("hits", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("feedback", sa.String(16), nullable=True),
        sa.Column("feedback_by", sa.String(200), nullable=True),
        sa.Column("feedback_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_answers"),
    )
    op.create_index("ix_audit_answers_created_at", "audit_answers", ["created_at"])
    op.create_index("ix_audit_answers_workspace", "audit_answers", ["workspace"])
    op.create_index("ix_audit_answers_conversation_id", "audit_answers", ["conversation_id"])
    op.create_index("ix_audit_answers_decision", "audit_answers", ["decision"])

    op.create_table(
        "audit_citations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("answer_id", sa.String(32), nullable=False),
        sa.Column("marker", sa.Integer(), nullable=False),
        sa.Column("point_id", sa.String(64), nullable=True),
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("article_id", sa.String(500), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(80), nullable=False),
        sa.Column("updated_at", sa.Integer(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("quote_start", sa.Integer(), nullable=False),
        sa.Column("quote_end", sa.Integer(), nullable=False),
        sa.Column("passage", sa.Text(), nullable=False),
        sa.Column("mark", sa.String(16), nullable=True),
        sa.Column("mark_by", sa.String(200), nullable=True),
        sa.Column("mark_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_citations"),
        sa.ForeignKeyConstraint(["answer_id"], ["audit_answers.id"], ondelete="CASCADE",
                                name="fk_audit_citations_answer_id_audit_answers"),
        sa.UniqueConstraint("answer_id", "marker", name="uq_audit_citations_answer_marker"),
    )
    op.create_index("ix_audit_citations_answer_id", "audit_citations", ["answer_id"])
    op.create_index("ix_audit_citations_article_id", "audit_citations", ["article_id"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("workspace", sa.String(200), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )


def downgrade() -> None:
    op.drop_table("api_keys")
    op.drop_index("ix_audit_citations_article_id", table_name="audit_citations")
    op.drop_index("ix_audit_citations_answer_id", table_name="audit_citations")
    op.drop_table("audit_citations")
    for col in ("decision", "conversation_id", "workspace", "created_at"):
        op.drop_index(f"ix_audit_answers_{col}", table_name="audit_answers")
    op.drop_table("audit_answers")
