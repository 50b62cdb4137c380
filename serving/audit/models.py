"""Audit tables (revision 0003): one row per finished answer, one per citation; feedback and gap vocabularies."""

from __future__ import annotations

from enum import StrEnum
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

class AdoptionOutcome(StrEnum):
    """What the agent did with a chat draft (``draft_adoptions.outcome``).

    ``sent_as_is`` / ``edited`` / ``not_used`` are for answer drafts; ``escalation_answered`` is a human's reply
    to a conversation the draft escalated (its links to the help center tell whether the answer existed).
    """

    SENT_AS_IS = "sent_as_is"
    EDITED = "edited"
    NOT_USED = "not_used"
    ESCALATION_ANSWERED = "escalation_answered"


SIMILARITY_KIND = "word_indel_similarity"
"""Kind of ``draft_adoptions.similarity``: normalised Indel similarity of the reply's and the draft's words."""
RETAINED_KIND = "draft_words_retained"
"""Kind of ``draft_adoptions.retained``: share of the draft's words found in the reply, in order."""

DRAFT_OUTCOMES = (AdoptionOutcome.SENT_AS_IS, AdoptionOutcome.EDITED, AdoptionOutcome.NOT_USED)
"""Outcomes of answer drafts (the adoption rate's denominator)."""

ADOPTION_CSV_COLUMNS = ("key", "replied_at", "conversation_id", "answer_id", "decision", "reason", "outcome",
                        "similarity", "similarity_kind", "retained", "retained_kind", "articles", "topics",
                        "team_id", "admin_id", "admin_name", "reply_links", "note_part_id", "reply_part_id")

CSV_COLUMNS = ("id", "created_at", "channel", "conversation_id", "question", "decision", "reason", "confidence",
               "confidence_kind", "answer", "short_answer", "citations", "generator", "model", "latency_total_ms",
               "feedback", "citations_incorrect", "citations_correct")





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
    short_answer: Mapped[str | None] = mapped_column(Text)  # revision 0008: the asked cell or quantity, Yes/No, if any
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


class DraftAdoption(Base):
    """What the agent did with one chat draft (revision 0006): one row per draft, written when a teammate first
    replies after it (``conversation.admin.replied``). Times are epoch seconds (UTC).

    ``similarity`` (kind ``similarity_kind``) and ``retained`` (kind ``retained_kind``) compare the reply's
    words with the draft's; both are None for an escalation (there was no draft text).
    """

    __tablename__ = "draft_adoptions"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)  # the draft's <conversation id>:<part id>
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    answer_id: Mapped[str | None] = mapped_column(String(32), index=True)  # the audit record of the draft
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(24), index=True)
    similarity: Mapped[float | None] = mapped_column(Float)
    similarity_kind: Mapped[str | None] = mapped_column(String(40))
    retained: Mapped[float | None] = mapped_column(Float)
    retained_kind: Mapped[str | None] = mapped_column(String(40))
    articles: Mapped[list] = mapped_column(JSON, default=list)  # the draft's citations: [{article_id, title, url}]
    topics: Mapped[list] = mapped_column(JSON, default=list)  # the conversation's tag names
    team_id: Mapped[str] = mapped_column(String(200), default="")
    admin_id: Mapped[str] = mapped_column(String(200), default="")
    admin_name: Mapped[str] = mapped_column(String(200), default="")
    reply_links: Mapped[list] = mapped_column(JSON, default=list)  # help-center URLs the reply linked
    note_part_id: Mapped[str | None] = mapped_column(String(200))
    reply_part_id: Mapped[str] = mapped_column(String(200))
    replied_at: Mapped[float] = mapped_column(Float, index=True)
    recorded_at: Mapped[float] = mapped_column(Float)
