"""Audit tables (revision 0003): one row per finished answer, one per citation; feedback and gap vocabularies."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from citedesk.core.types import AnswerReason
from citedesk.serving.db.engine import Base

Mark = Literal["correct", "incorrect"]
FEEDBACK_STATES = ("unreviewed", "reviewed", "helpful", "unhelpful", "citation_incorrect", "citation_correct")
"""Values of the ``feedback`` filter."""

GAP_REASONS = tuple(r.value for r in AnswerReason if r.is_content_gap)
"""Escalation reasons that point at missing content (not at an unavailable or misbehaving model)."""

CSV_COLUMNS = ("id", "created_at", "channel", "conversation_id", "question", "decision", "reason", "confidence",
               "confidence_kind", "answer", "citations", "generator", "model", "latency_total_ms", "feedback",
               "citations_incorrect", "citations_correct")





class AuditAnswer(Base):
    """One finished answer or escalation. Times are epoch seconds (UTC)."""

    __tablename__ = "audit_answers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[str | None] = mapped_column(String(200), index=True)
    request_id: Mapped[str | None] = mapped_column(String(64), index=True)  # revision 0005: the HTTP request's id
    locale: Mapped[str | None] = mapped_column(String(16))
    question: Mapped[str] = mapped_column(Text)
    redactions: Mapped[int] = mapped_column(Integer, default=0)
    decision: Mapped[str] = mapped_column(String(16), index=True)
    reason: Mapped[str] = mapped_column(String(40))
    confidence: Mapped[float] = mapped_column(Float)
    confidence_kind: Mapped[str] = mapped_column(String(40))
    answer: Mapped[str] = mapped_column(Text, default="")
    handoff_summary: Mapped[str | None] = mapped_column(Text)
    generator: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(200))
    latency_ms: Mapped[dict] = mapped_column(JSON, default=dict)
    signals: Mapped[dict | None] = mapped_column(JSON)  # revision 0004: what decided (confidence signals, rejections)
    hits: Mapped[list] = mapped_column(JSON, default=list)
    evidence: Mapped[list] = mapped_column(JSON, default=list)
    feedback: Mapped[str | None] = mapped_column(String(16))
    feedback_by: Mapped[str | None] = mapped_column(String(200))
    feedback_at: Mapped[float | None] = mapped_column(Float)

    citations: Mapped[list[AuditCitation]] = relationship(
        back_populates="answer_row", cascade="all, delete-orphan", order_by="AuditCitation.marker",
        passive_deletes=True)


class AuditCitation(Base):
    """One citation of a recorded answer: the revision and span it quoted, and a reviewer's mark."""

    __tablename__ = "audit_citations"
    __table_args__ = (UniqueConstraint("answer_id", "marker", name="uq_audit_citations_answer_marker"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    answer_id: Mapped[str] = mapped_column(ForeignKey("audit_answers.id", ondelete="CASCADE"), index=True)
    marker: Mapped[int] = mapped_column(Integer)
    point_id: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(40))
    article_id: Mapped[str] = mapped_column(String(500), index=True)
    locale: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(80))
    updated_at: Mapped[int] = mapped_column(Integer)
    chunk_index: Mapped[int] = mapped_column(Integer)
    quote: Mapped[str] = mapped_column(Text)
    quote_start: Mapped[int] = mapped_column(Integer)
    quote_end: Mapped[int] = mapped_column(Integer)
    passage: Mapped[str] = mapped_column(Text, default="")
    mark: Mapped[str | None] = mapped_column(String(16))
    mark_by: Mapped[str | None] = mapped_column(String(200))
    mark_at: Mapped[float | None] = mapped_column(Float)

    answer_row: Mapped[AuditAnswer] = relationship(back_populates="citations")
