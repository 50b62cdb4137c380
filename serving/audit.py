"""Audit trail of answers: the recorder hooked into the answer pipeline, queries, reports, retention and
the personal-data redaction rule.

Every finished answer (API, stream, middleware, voice: they all go through
:class:`~serving.pipeline.AnswerPipeline`) becomes one ``audit_answers`` row with its citations in
``audit_citations``. Tables live in the relational store (:mod:`serving.db`; migration ``0003``).

A citation records the article *revision* it quoted (``content_hash``, ``updated_at``) and the passage
text as it was; :meth:`AuditLog.get` compares the revision with the index's current one, so a reviewer
sees when the article changed (``changed``) or was removed (``deleted``) after the answer.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal

import numpy as np
from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, UniqueConstraint, and_, delete, exists, func, select
from sqlalchemy.orm import Mapped, aliased, mapped_column, relationship, selectinload

from core.errors import CitedeskError, IndexUnavailableError
from core.types import Decision, Hit
from serving.db import Base, Database
from serving.schemas import AnswerRequest, AnswerResponse

log = logging.getLogger(__name__)

Mark = Literal["correct", "incorrect"]
FEEDBACK_STATES = ("unreviewed", "reviewed", "helpful", "unhelpful", "citation_incorrect", "citation_correct")
"""Values of the ``feedback`` filter."""

GAP_REASONS = ("no_evidence", "low_confidence", "generator_declined", "uncited_answer", "unsupported_claim",
               "unsupported_citation")
"""Escalation reasons that point at missing content (not at an unavailable or misbehaving model)."""

CSV_COLUMNS = ("id", "created_at", "channel", "conversation_id", "question", "decision", "reason", "confidence",
               "confidence_kind", "answer", "citations", "generator", "model", "latency_total_ms", "feedback",
               "citations_incorrect", "citations_correct")


# -- tables ----------------------------------------------------------------------------------------


class AuditAnswer(Base):
    """One finished answer or escalation. Times are epoch seconds (UTC)."""

    __tablename__ = "audit_answers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    workspace: Mapped[str] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[str | None] = mapped_column(String(200), index=True)
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


# -- redaction ---------------------------------------------------------------------------------------


class Redactor:
    """Personal-data rule: every match of a named regex becomes ``[name]``.

    Args:
        patterns: name → regex, applied in order (put broader patterns last). Empty disables redaction.

    Raises:
        ValueError: a pattern does not compile (message names it).
    """

    def __init__(self, patterns: dict[str, str]) -> None:
        self.rules: list[tuple[str, re.Pattern]] = []
        for name, pattern in patterns.items():
            try:
                self.rules.append((name, re.compile(pattern)))
            except re.error as exc:
                raise ValueError(f"audit.redact[{name!r}] is not a valid regex: {exc}") from exc

    def __call__(self, text: str | None) -> tuple[str | None, int]:
        """Returns ``(redacted text, number of spans replaced)``."""
        if not text:
            return text, 0
        total = 0
        for name, rx in self.rules:
            text, n = rx.subn(f"[{name}]", text)
            total += n
        return text, total


# -- filters -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """Which recorded answers a list, export or report covers (all fields optional, combined with AND).

    Attributes:
        decision: ``answer`` or ``escalate``.
        max_confidence: only answers whose confidence (answerable_probability) is below this.
        since / until: epoch seconds, ``since`` inclusive, ``until`` exclusive (inverted: matches nothing).
        article: substring of a cited article id.
        feedback: one of :data:`FEEDBACK_STATES`.
        channel: ``chat`` or ``voice``.
        reason: exact decision reason (``grounded``, ``low_confidence``, ...).
        conversation_id: exact conversation id.
        text: case-insensitive substring of the (redacted) question.
        workspace: tenant; the API sets it from the caller's key, so a key only sees its own tenant.
    """

    decision: str | None = None
    max_confidence: float | None = None
    since: float | None = None
    until: float | None = None
    article: str | None = None
    feedback: str | None = None
    channel: str | None = None
    reason: str | None = None
    conversation_id: str | None = None
    text: str | None = None
    workspace: str | None = None

    def __post_init__(self) -> None:
        if self.decision not in (None, "answer", "escalate"):
            raise ValueError(f"decision must be 'answer' or 'escalate', not {self.decision!r}")
        if self.feedback not in (None, *FEEDBACK_STATES):
            raise ValueError(f"feedback must be one of {', '.join(FEEDBACK_STATES)}; got {self.feedback!r}")


def _like(value: str) -> str:
    return "%" + value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _conditions(f: AuditFilter) -> list:
    A, C = AuditAnswer, aliased(AuditCitation)  # alias: reports join citations themselves; EXISTS must not correlate them
    cond = []
    if f.workspace:
        cond.append(A.workspace == f.workspace)
    if f.decision:
        cond.append(A.decision == f.decision)
    if f.max_confidence is not None:
        cond.append(A.confidence < f.max_confidence)
    if f.since is not None:
        cond.append(A.created_at >= f.since)
    if f.until is not None:
        cond.append(A.created_at < f.until)
    if f.channel:
        cond.append(A.channel == f.channel)
    if f.reason:
        cond.append(A.reason == f.reason)
    if f.conversation_id:
        cond.append(A.conversation_id == f.conversation_id)
    if f.text:
        cond.append(func.lower(A.question).like(_like(f.text.lower()), escape="\\"))
    if f.article:
        cond.append(exists().where(C.answer_id == A.id, C.article_id.like(_like(f.article), escape="\\")))
    marked = lambda mark: exists().where(C.answer_id == A.id, C.mark == mark)  # noqa: E731
    any_mark = exists().where(C.answer_id == A.id, C.mark.is_not(None))
    if f.feedback == "helpful":
        cond.append(A.feedback == "helpful")
    elif f.feedback == "unhelpful":
        cond.append(A.feedback == "unhelpful")
    elif f.feedback == "citation_incorrect":
        cond.append(marked("incorrect"))
    elif f.feedback == "citation_correct":
        cond.append(marked("correct"))
    elif f.feedback == "reviewed":
        cond.append((A.feedback.is_not(None)) | any_mark)
    elif f.feedback == "unreviewed":
        cond.append(and_(A.feedback.is_(None), ~any_mark))
    return cond


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO 8601 UTC (``2024-05-01T12:00:00Z``), None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv_cell(value) -> str:
    """A spreadsheet-safe cell: text starting with = + - @ (a formula) gets a leading apostrophe."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


# -- the log -----------------------------------------------------------------------------------------


class AuditLog:
    """Records answers and serves the audit page's queries and reports.

    Cheap constructor: the database is migrated on first use, the embedder is only used by
    :meth:`content_gaps`.

    Args:
        db: relational store.
        workspace: tenant recorded on each answer (the pipeline's workspace).
        redactor: personal-data rule applied to questions and handoff summaries before storing.
        retention_days: records older than this are purged (0 keeps them forever); checked at most once
            an hour while recording, or by calling :meth:`purge`.
        index: the Qdrant index, to tell whether a cited revision is still current.
        embedder: dense embedder (``embed(texts) -> (n, dim)`` L2-normalised) for grouping content gaps.
        gap_similarity: minimum cosine of a question to its group's first question.
        low_confidence: what the page's "low confidence" filter means (confidence below this).
        clock: epoch-seconds clock (tests pass a fixed one).
    """

    def __init__(self, db: Database, *, workspace: str = "default", redactor: Redactor | None = None,
                 retention_days: int = 0, index=None, embedder=None, gap_similarity: float = 0.6,
                 low_confidence: float = 0.7, clock=time.time) -> None:
        self.db = db
        self.workspace = workspace
        self.redactor = redactor or Redactor({})
        self.retention_days = retention_days
        self.index = index
        self.embedder = embedder
        self.gap_similarity = gap_similarity
        self.low_confidence = low_confidence
        self.manifest_above = 20  # changed-articles: more distinct docs than this → one manifest scroll per source
        self.clock = clock
        self._last_purge = 0.0
        self._purge_lock = threading.Lock()
        self._gap_vectors: dict[str, np.ndarray] = {}

    # -- recording ---------------------------------------------------------------------------------
    def record(self, request: AnswerRequest, response: AnswerResponse, evidence: list[Hit], *,
               workspace: str | None = None) -> str:
        """Store one finished answer (the pipeline's recorder hook; blocking, run it in a thread).

        Args:
            request: the question as asked.
            response: the final answer or escalation.
            evidence: the hits given to the generator, in marker order (``[n]`` cites ``evidence[n-1]``);
                empty when the pipeline escalated before generating.
            workspace: the tenant the answer was searched in (default: this log's workspace).

        Returns:
            The new record's id (32 hex chars).

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database failed (the pipeline logs it and answers anyway).
        """
        now = self.clock()
        question, n_q = self.redactor(request.question)
        handoff, n_h = self.redactor(response.handoff_summary)
        row = AuditAnswer(
            id=uuid.uuid4().hex, created_at=now, workspace=workspace or self.workspace, channel=request.channel.value,
            conversation_id=request.conversation_id, locale=request.locale, question=question or "",
            redactions=n_q + n_h, decision=response.decision.value, reason=response.reason,
            confidence=response.confidence, confidence_kind=response.confidence_kind, answer=response.answer,
            handoff_summary=handoff, generator=response.generator, model=response.model,
            latency_ms=dict(response.latency_ms),
            hits=[dict(h.model_dump(mode="json"), rank=i + 1) for i, h in enumerate(response.hits)],
            evidence=[{"marker": i + 1, "point_id": h.point_id, "source": h.source, "article_id": h.article_id,
                       "locale": h.locale, "title": h.title, "url": h.url, "chunk_index": h.chunk_index,
                       "content_hash": h.content_hash, "updated_at": h.updated_at, "heading": h.heading,
                       "score": h.score, "score_kind": h.score_kind.value, "cosine": h.cosine, "text": h.text}
                      for i, h in enumerate(evidence)],
        )
        for c in response.citations:
            hit = evidence[c.marker - 1] if 0 < c.marker <= len(evidence) else None
            if hit is None or (hit.article_id, hit.chunk_index) != (c.article_id, c.chunk_index):
                hit = next((h for h in evidence if (h.article_id, h.chunk_index, h.content_hash)
                            == (c.article_id, c.chunk_index, c.content_hash)), None)
            row.citations.append(AuditCitation(
                marker=c.marker, point_id=hit.point_id if hit else None, source=hit.source if hit else c.source,
                article_id=c.article_id, locale=c.locale, title=c.title, url=c.url, content_hash=c.content_hash,
                updated_at=c.updated_at, chunk_index=c.chunk_index, quote=c.quote, quote_start=c.quote_start,
                quote_end=c.quote_end, passage=hit.text if hit else c.quote))
        with self.db.session() as s:
            s.add(row)
        if self.retention_days and now - self._last_purge > 3600:
            self._purge_quietly(now)
        return row.id

    def _purge_quietly(self, now: float) -> None:
        if not self._purge_lock.acquire(blocking=False):
            return
        try:
            self._last_purge = now
            n = self.purge(now=now)
            if n:
                log.info("audit retention: purged %d answers older than %d days", n, self.retention_days)
        except Exception:  # noqa: BLE001 - retention must not break recording
            log.exception("audit retention purge failed")
        finally:
            self._purge_lock.release()

    def purge(self, *, now: float | None = None, older_than_days: int | None = None) -> int:
        """Delete answers (and their citations and marks) older than the retention period.

        Args:
            now: epoch seconds (default: the clock).
            older_than_days: overrides ``retention_days``; 0 or None with ``retention_days`` 0 deletes nothing.

        Returns:
            Number of answers deleted.
        """
        days = self.retention_days if older_than_days is None else older_than_days
        if not days:
            return 0
        cutoff = (self.clock() if now is None else now) - days * 86400
        with self.db.session() as s:
            old = select(AuditAnswer.id).where(AuditAnswer.created_at < cutoff)
            s.execute(delete(AuditCitation).where(AuditCitation.answer_id.in_(old)))
            return s.execute(delete(AuditAnswer).where(AuditAnswer.created_at < cutoff)).rowcount or 0

    # -- reviewing ----------------------------------------------------------------------------------
    def set_feedback(self, answer_id: str, helpful: bool | None, *, by: str, workspace: str | None = None) -> dict:
        """Mark an answer helpful (True), unhelpful (False) or clear the mark (None).

        Returns:
            ``{"id", "feedback", "feedback_by", "feedback_at"}``.

        Raises:
            KeyError: no such answer.
        """
        with self.db.session() as s:
            row = s.get(AuditAnswer, answer_id)
            if row is None or (workspace and row.workspace != workspace):
                raise KeyError(answer_id)
            row.feedback = None if helpful is None else ("helpful" if helpful else "unhelpful")
            row.feedback_by, row.feedback_at = (None, None) if helpful is None else (by, self.clock())
            return {"id": row.id, "feedback": row.feedback, "feedback_by": row.feedback_by,
                    "feedback_at": iso(row.feedback_at)}

    def mark_citation(self, answer_id: str, marker: int, mark: Mark | None, *, by: str,
                      workspace: str | None = None) -> dict:
        """Mark citation ``[marker]`` of an answer correct / incorrect, or clear the mark (None).

        Returns:
            ``{"id", "marker", "mark", "mark_by", "mark_at"}``.

        Raises:
            KeyError: no such answer or citation.
        """
        if mark not in (None, "correct", "incorrect"):
            raise ValueError(f"mark must be 'correct', 'incorrect' or null, not {mark!r}")
        with self.db.session() as s:
            q = select(AuditCitation).where(AuditCitation.answer_id == answer_id, AuditCitation.marker == marker)
            if workspace:
                q = q.join(AuditAnswer, AuditAnswer.id == AuditCitation.answer_id).where(
                    AuditAnswer.workspace == workspace)
            cit = s.scalars(q).first()
            if cit is None:
                raise KeyError(f"{answer_id}[{marker}]")
            cit.mark = mark
            cit.mark_by, cit.mark_at = (None, None) if mark is None else (by, self.clock())
            return {"id": answer_id, "marker": marker, "mark": cit.mark, "mark_by": cit.mark_by,
                    "mark_at": iso(cit.mark_at)}

    # -- queries ------------------------------------------------------------------------------------
    def list(self, flt: AuditFilter = AuditFilter(), *, limit: int = 50, offset: int = 0) -> tuple[int, list[dict]]:
        """Recorded answers matching ``flt``, newest first.

        Returns:
            ``(total matching, page of summaries)``; a summary has ``id, created_at (ISO), channel,
            conversation_id, question, decision, reason, confidence, confidence_kind, articles (cited ids),
            feedback, citations_incorrect, citations_correct, latency_total_ms``.
        """
        cond = _conditions(flt)
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(AuditAnswer).where(*cond)) or 0
            rows = s.scalars(select(AuditAnswer).where(*cond).options(selectinload(AuditAnswer.citations))
                             .order_by(AuditAnswer.created_at.desc(), AuditAnswer.id)
                             .limit(limit).offset(offset)).all()
            return total, [self._summary(r) for r in rows]

    @staticmethod
    def _summary(r: AuditAnswer) -> dict:
        marks = Counter(c.mark for c in r.citations)
        return {"id": r.id, "created_at": iso(r.created_at), "channel": r.channel,
                "conversation_id": r.conversation_id, "question": r.question, "decision": r.decision,
                "reason": r.reason, "confidence": r.confidence, "confidence_kind": r.confidence_kind,
                "articles": list(dict.fromkeys(c.article_id for c in r.citations)), "feedback": r.feedback,
                "citations_incorrect": marks["incorrect"], "citations_correct": marks["correct"],
                "latency_total_ms": (r.latency_ms or {}).get("total")}

    def get(self, answer_id: str, *, check_revisions: bool = True, workspace: str | None = None) -> dict | None:
        """One recorded answer with everything, or None.

        Each citation gets ``revision_status``: ``current`` (the index still holds the cited revision),
        ``changed`` (the article has a newer revision: ``current_revision``, ``current_updated_at``;
        ``quote_in_current`` / ``passage_in_current`` say whether the quoted span / the whole cited passage
        are still in the current text), ``deleted`` (no longer in the index)
        or ``unknown`` (index unreachable, ``revision_error`` says why). With ``workspace``, a record of
        another tenant is None.
        """
        with self.db.session() as s:
            q = select(AuditAnswer).where(AuditAnswer.id == answer_id)
            if workspace:
                q = q.where(AuditAnswer.workspace == workspace)
            r = s.scalars(q.options(selectinload(AuditAnswer.citations))).first()
            if r is None:
                return None
            out = {**self._summary(r), "workspace": r.workspace, "locale": r.locale, "answer": r.answer,
                   "redactions": r.redactions, "handoff_summary": r.handoff_summary, "generator": r.generator,
                   "model": r.model, "latency_ms": r.latency_ms, "hits": r.hits, "evidence": r.evidence,
                   "feedback_by": r.feedback_by, "feedback_at": iso(r.feedback_at),
                   "citations": [self._citation(c) for c in r.citations]}
        if check_revisions:
            current = self._current_revisions(out["workspace"], {self._doc_key(out["workspace"], c)
                                                                  for c in out["citations"]})
            for c in out["citations"]:
                c.update(self._status(c, current.get(self._doc_key(out["workspace"], c))))
        return out

    @staticmethod
    def _citation(c: AuditCitation) -> dict:
        return {"marker": c.marker, "point_id": c.point_id, "source": c.source, "article_id": c.article_id,
                "locale": c.locale, "title": c.title, "url": c.url, "content_hash": c.content_hash,
                "updated_at": c.updated_at, "chunk_index": c.chunk_index, "quote": c.quote,
                "quote_start": c.quote_start, "quote_end": c.quote_end, "passage": c.passage,
                "mark": c.mark, "mark_by": c.mark_by, "mark_at": iso(c.mark_at)}

    @staticmethod
    def _doc_key(workspace: str, c: dict) -> str:
        return f"{workspace}/{c['source']}/{c['article_id']}/{c['locale']}"

    def _current_revisions(self, workspace: str, doc_keys: set[str], *,
                           with_text: bool = True) -> dict[str, dict | str | None]:
        """doc_key → ``{"content_hash", "updated_at"[, "text"]}`` of the indexed revision, ``None`` when the
        doc is gone, or an error string when the index cannot be asked.

        Without text and for many docs, one manifest scroll per source (payload fields only) replaces a
        scroll per doc.
        """
        if self.index is None:
            return {key: "no index configured" for key in doc_keys}
        out: dict[str, dict | str | None] = {}
        try:
            if not with_text and len(doc_keys) > self.manifest_above:
                sources = {key[len(workspace) + 1:].split("/", 1)[0] for key in doc_keys}
                manifest = {}
                for source in sources:
                    manifest.update(self.index.manifest(workspace, source))
                for key in doc_keys:
                    st = manifest.get(key)
                    out[key] = None if st is None else {"content_hash": st.content_hash, "updated_at": st.updated_at}
                return out
            for key in doc_keys:
                points = self.index.doc_points(workspace, key)
                out[key] = None if not points else {
                    "content_hash": points[0].get("content_hash"), "updated_at": points[0].get("updated_at"),
                    "text": "\n".join(p.get("text", "") for p in points)}
        except IndexUnavailableError as exc:
            return {key: f"index unavailable: {exc}" for key in doc_keys}
        return out

    @staticmethod
    def _status(c: dict, cur: dict | str | None) -> dict:
        if isinstance(cur, str):
            return {"revision_status": "unknown", "revision_error": cur}
        if cur is None:
            return {"revision_status": "deleted"}
        if cur["content_hash"] == c["content_hash"]:
            return {"revision_status": "current"}
        return {"revision_status": "changed", "current_revision": cur["content_hash"],
                "current_updated_at": cur["updated_at"], "quote_in_current": c["quote"] in cur["text"],
                "passage_in_current": bool(c["passage"]) and c["passage"] in cur["text"]}

    def export_csv(self, flt: AuditFilter = AuditFilter(), *, limit: int = 100_000) -> str:
        """CSV (header + one row per answer, newest first) of :data:`CSV_COLUMNS`; cells that a spreadsheet
        would run as formulas are prefixed with an apostrophe."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CSV_COLUMNS)
        cond = _conditions(flt)
        with self.db.session() as s:
            rows = s.scalars(select(AuditAnswer).where(*cond).options(selectinload(AuditAnswer.citations))
                             .order_by(AuditAnswer.created_at.desc(), AuditAnswer.id).limit(limit))
            for r in rows:
                sm = self._summary(r)
                cites = " ".join(f"[{c.marker}]{c.article_id}@{c.content_hash[:12]}" for c in r.citations)
                w.writerow([_csv_cell(v) for v in (
                    r.id, sm["created_at"], r.channel, r.conversation_id, r.question, r.decision, r.reason,
                    r.confidence, r.confidence_kind, r.answer, cites, r.generator, r.model,
                    sm["latency_total_ms"], r.feedback, sm["citations_incorrect"], sm["citations_correct"])])
        return buf.getvalue()

    # -- reports ------------------------------------------------------------------------------------
    def escalation_rate(self, flt: AuditFilter = AuditFilter()) -> dict:
        """Share of answers that escalated.

        Returns:
            ``{"total", "escalated", "rate" (0..1, None when no answers), "by_reason": {reason: n},
            "by_channel": {channel: {"total", "escalated", "rate"}}, "by_day": [{"date", "total",
            "escalated", "rate"}]}`` (days in UTC, oldest first).
        """
        cond = _conditions(flt)
        with self.db.session() as s:
            rows = s.execute(select(AuditAnswer.created_at, AuditAnswer.channel, AuditAnswer.decision,
                                    AuditAnswer.reason).where(*cond)).all()
        esc = Decision.ESCALATE.value

        def rate(items) -> dict:
            n, e = len(items), sum(1 for r in items if r.decision == esc)
            return {"total": n, "escalated": e, "rate": round(e / n, 4) if n else None}

        by_channel: dict[str, list] = {}
        by_day: dict[str, list] = {}
        for r in rows:
            by_channel.setdefault(r.channel, []).append(r)
            by_day.setdefault(iso(r.created_at)[:10], []).append(r)
        return {**rate(rows),
                "by_reason": dict(Counter(r.reason for r in rows if r.decision == esc).most_common()),
                "by_channel": {k: rate(v) for k, v in sorted(by_channel.items())},
                "by_day": [{"date": d, **rate(v)} for d, v in sorted(by_day.items())]}

    def answers_by_article(self, flt: AuditFilter = AuditFilter(), *, limit: int = 50) -> list[dict]:
        """Articles by number of answers citing them.

        Returns:
            ``[{"article_id", "locale", "title", "answers", "citations_incorrect", "citations_correct",
            "last_cited_at"}]``, most cited first.
        """
        C, A = AuditCitation, AuditAnswer
        q = (select(C.article_id, C.locale, func.max(C.title), func.count(func.distinct(C.answer_id)),
                    func.sum((C.mark == "incorrect").cast(Integer)), func.sum((C.mark == "correct").cast(Integer)),
                    func.max(A.created_at))
             .join(A, A.id == C.answer_id).where(*_conditions(flt))
             .group_by(C.article_id, C.locale).order_by(func.count(func.distinct(C.answer_id)).desc(), C.article_id)
             .limit(limit))
        with self.db.session() as s:
            return [{"article_id": a, "locale": loc, "title": t, "answers": n, "citations_incorrect": int(bad or 0),
                     "citations_correct": int(good or 0), "last_cited_at": iso(last)}
                    for a, loc, t, n, bad, good, last in s.execute(q).all()]

    def changed_articles(self, flt: AuditFilter = AuditFilter()) -> list[dict]:
        """Articles that changed or were deleted after answers cited them (those answers need a review).

        Returns:
            ``[{"article_id", "locale", "title", "status": "changed"|"deleted", "answers" (citing an old
            revision), "cited_revisions", "last_cited_at", "current_revision", "current_updated_at"}]``,
            most answers first. Articles whose status cannot be checked (index down) are left out.
        """
        C, A = AuditCitation, AuditAnswer
        q = (select(A.workspace, C.source, C.article_id, C.locale, C.content_hash, func.max(C.title),
                    func.count(func.distinct(C.answer_id)), func.max(A.created_at))
             .join(A, A.id == C.answer_id).where(*_conditions(flt))
             .group_by(A.workspace, C.source, C.article_id, C.locale, C.content_hash))
        with self.db.session() as s:
            rows = s.execute(q).all()
        by_ws: dict[str, set[str]] = {}
        for ws, src, aid, loc, *_ in rows:
            by_ws.setdefault(ws, set()).add(f"{ws}/{src}/{aid}/{loc}")
        current = {}
        for ws, keys in by_ws.items():
            current.update(self._current_revisions(ws, keys, with_text=False))
        out: dict[str, dict] = {}
        for ws, src, aid, loc, rev, title, n, last in rows:
            key = f"{ws}/{src}/{aid}/{loc}"
            cur = current.get(key)
            if isinstance(cur, str) or (cur is not None and cur["content_hash"] == rev):
                continue
            item = out.setdefault(key, {
                "article_id": aid, "locale": loc, "title": title, "status": "deleted" if cur is None else "changed",
                "answers": 0, "cited_revisions": [], "last_cited_at": None,
                "current_revision": None if cur is None else cur["content_hash"],
                "current_updated_at": None if cur is None else cur["updated_at"]})
            item["answers"] += n
            item["cited_revisions"].append(rev)
            item["last_cited_at"] = max(item["last_cited_at"] or "", iso(last))
        return sorted(out.values(), key=lambda d: (-d["answers"], d["article_id"]))

    def content_gaps(self, flt: AuditFilter = AuditFilter(), *, limit: int = 500) -> list[dict]:
        """Escalated questions with no supporting content (reasons in :data:`GAP_REASONS`), grouped by
        similarity: each question joins the first group whose first question has cosine ≥
        ``gap_similarity`` with it (questions taken newest first), else starts a group.

        Returns:
            ``[{"size", "question" (the group's first), "questions": [{"id", "question", "created_at",
            "reason"}] (up to 20), "reasons": {reason: n}, "closest_articles": [title], "last_asked"}]``,
            biggest group first.

        Raises:
            CitedeskError: no embedder configured.
        """
        if self.embedder is None:
            raise CitedeskError("content gaps need the embedding model (no embedder configured)")
        cond = _conditions(flt) + [AuditAnswer.decision == Decision.ESCALATE.value,
                                   AuditAnswer.reason.in_(GAP_REASONS)]
        with self.db.session() as s:
            rows = s.execute(select(AuditAnswer.id, AuditAnswer.question, AuditAnswer.created_at,
                                    AuditAnswer.reason, AuditAnswer.hits).where(*cond)
                             .order_by(AuditAnswer.created_at.desc()).limit(limit)).all()
        if not rows:
            return []
        missing = [r for r in rows if r.id not in self._gap_vectors]
        if missing:
            vecs = self.embedder.embed([r.question for r in missing])
            self._gap_vectors.update({r.id: v for r, v in zip(missing, vecs, strict=True)})
            if len(self._gap_vectors) > 20_000:
                self._gap_vectors = {r.id: self._gap_vectors[r.id] for r in rows}
        vectors = np.stack([self._gap_vectors[r.id] for r in rows])
        leaders: list[int] = []
        members: list[list[int]] = []
        for i in range(len(rows)):
            if leaders:
                sims = vectors[leaders] @ vectors[i]
                j = int(np.argmax(sims))
                if sims[j] >= self.gap_similarity:
                    members[j].append(i)
                    continue
            leaders.append(i)
            members.append([i])
        groups = []
        for lead, idx in zip(leaders, members, strict=True):
            titles = Counter(h.get("title") for k in idx for h in (rows[k].hits or [])[:3] if h.get("title"))
            groups.append({
                "size": len(idx), "question": rows[lead].question,
                "questions": [{"id": rows[k].id, "question": rows[k].question,
                               "created_at": iso(rows[k].created_at), "reason": rows[k].reason} for k in idx[:20]],
                "reasons": dict(Counter(rows[k].reason for k in idx).most_common()),
                "closest_articles": [t for t, _ in titles.most_common(3)],
                "last_asked": iso(max(rows[k].created_at for k in idx))})
        groups.sort(key=lambda g: g["last_asked"], reverse=True)
        groups.sort(key=lambda g: g["size"], reverse=True)  # stable: equal sizes stay most recent first
        return groups
