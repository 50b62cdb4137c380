"""Audit trail of answers: the recorder hooked into the answer pipeline, queries, reports, retention and
the personal-data redaction rule.

Every finished answer (API, stream, Intercom drafts, voice: they all go through
:class:`~citedesk.serving.answer.pipeline.AnswerPipeline`) becomes one ``audit_answers`` row with its citations in
``audit_citations``. Tables live in the relational store (:mod:`citedesk.serving.db`; migration ``0003``).

A citation records the article *revision* it quoted (``content_hash``, ``updated_at``) and the passage
text as it was; :meth:`AuditLog.get` compares the revision with the index's current one, so a reviewer
sees when the article changed (``changed``) or was removed (``deleted``) after the answer.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import selectinload

from citedesk.core.errors import IndexUnavailableError
from citedesk.core.types import Hit
from citedesk.serving.answer.schemas import AnswerRequest, AnswerResponse
from citedesk.serving.audit.filters import AuditFilter, _conditions, iso
from citedesk.serving.audit.models import AuditAnswer, AuditCitation, DraftAdoption, Mark
from citedesk.serving.audit.redaction import Redactor
from citedesk.serving.audit.reports import AuditReports
from citedesk.serving.db.engine import Database
from citedesk.serving.observability.logs import current_request_id

__all__ = ["AuditLog"]

log = logging.getLogger(__name__)


class AuditLog(AuditReports):
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

        The id of the HTTP request being served (:func:`~citedesk.serving.observability.logs.current_request_id`)
        is stored with it, so an access-log line leads to its record.

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
            conversation_id=request.conversation_id, request_id=current_request_id(), locale=request.locale, question=question or "",
            redactions=n_q + n_h, decision=response.decision.value, reason=response.reason,
            confidence=response.confidence, confidence_kind=response.confidence_kind, answer=response.answer,
            short_answer=response.short_answer, handoff_summary=handoff, generator=response.generator, model=response.model,
            latency_ms=dict(response.latency_ms), signals=response.signals,
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
        """Delete answers (and their citations and marks) and draft adoption records older than the retention period.

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
            s.execute(delete(DraftAdoption).where(DraftAdoption.replied_at < cutoff))
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
            out = {**self._summary(r), "workspace": r.workspace, "request_id": r.request_id, "locale": r.locale, "answer": r.answer,
                   "short_answer": r.short_answer, "redactions": r.redactions, "handoff_summary": r.handoff_summary, "generator": r.generator,
                   "model": r.model, "latency_ms": r.latency_ms, "signals": r.signals or {}, "hits": r.hits, "evidence": r.evidence,
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
