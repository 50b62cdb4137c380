"""What support managers read: CSV export, escalation rate, answers by article, changed articles, content gaps,
draft adoption (what agents did with chat drafts)."""

from __future__ import annotations

import csv
import io
from collections import Counter

import numpy as np
from sqlalchemy import Integer, func, select
from sqlalchemy.orm import selectinload

from citedesk.core.errors import CitedeskError
from citedesk.core.types import Decision
from citedesk.serving.audit.filters import AuditFilter, _conditions, _csv_cell, iso
from citedesk.serving.audit.models import (
    ADOPTION_CSV_COLUMNS,
    CSV_COLUMNS,
    DRAFT_OUTCOMES,
    GAP_REASONS,
    SIMILARITY_KIND,
    AdoptionOutcome,
    AuditAnswer,
    AuditCitation,
    DraftAdoption,
)

__all__ = ["ANSWER_EXISTED", "HELP_CENTER_LACKS", "AuditReports"]

ANSWER_EXISTED = "answer_existed"
"""An escalated conversation a teammate resolved with a reply linking a help-center article."""
HELP_CENTER_LACKS = "help_center_lacks"
"""An escalated conversation a teammate resolved without linking any article."""


def _gap(links: list | None) -> str:
    return ANSWER_EXISTED if links else HELP_CENTER_LACKS


def _adoption_counts(rows: list) -> dict:
    """``{"drafts", "sent_as_is", "edited", "not_used", "adoption_rate", "sent_as_is_rate", "mean_similarity"}``
    of answer-draft adoption rows; rates are shares of ``drafts`` (None when there are none)."""
    n = len(rows)
    out = {"drafts": n, **{o.value: sum(1 for r in rows if r.outcome == o.value) for o in DRAFT_OUTCOMES}}
    out["adoption_rate"] = round((out["sent_as_is"] + out["edited"]) / n, 4) if n else None
    out["sent_as_is_rate"] = round(out["sent_as_is"] / n, 4) if n else None
    sims = [r.similarity for r in rows if r.similarity is not None]
    out["mean_similarity"] = round(sum(sims) / len(sims), 4) if sims else None
    return out


class AuditReports:
    """Report queries of :class:`~citedesk.serving.audit.log.AuditLog` (mixed into it; they use its ``db``,
    ``embedder``, ``gap_similarity``, ``_summary`` and ``_current_revisions``)."""

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
                    r.confidence, r.confidence_kind, r.answer, r.short_answer or "", cites, r.generator, r.model,
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
            "reason", "human_reply"}] (up to 20), "reasons": {reason: n}, "closest_articles": [title], "last_asked",
            "answer_existed", "help_center_lacks"}]``, biggest group first. ``human_reply`` is None until a
            teammate answers the escalated conversation (chat drafts), then ``{"gap": "answer_existed"`` (the
            reply linked a help-center article: the answer existed but we escalated) or ``"help_center_lacks"``,
            ``"links"}``; the group counts them.

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
        replied = self.human_replies([r.id for r in rows])
        groups = []
        for lead, idx in zip(leaders, members, strict=True):
            titles = Counter(h.get("title") for k in idx for h in (rows[k].hits or [])[:3] if h.get("title"))
            groups.append({
                "size": len(idx), "question": rows[lead].question,
                "questions": [{"id": rows[k].id, "question": rows[k].question,
                               "created_at": iso(rows[k].created_at), "reason": rows[k].reason,
                               "human_reply": replied.get(rows[k].id)} for k in idx[:20]],
                ANSWER_EXISTED: sum(1 for k in idx if replied.get(rows[k].id, {}).get("gap") == ANSWER_EXISTED),
                HELP_CENTER_LACKS: sum(1 for k in idx
                                       if replied.get(rows[k].id, {}).get("gap") == HELP_CENTER_LACKS),
                "reasons": dict(Counter(rows[k].reason for k in idx).most_common()),
                "closest_articles": [t for t, _ in titles.most_common(3)],
                "last_asked": iso(max(rows[k].created_at for k in idx))})
        groups.sort(key=lambda g: g["last_asked"], reverse=True)
        groups.sort(key=lambda g: g["size"], reverse=True)  # stable: equal sizes stay most recent first
        return groups

    # -- draft adoption -------------------------------------------------------------------------------
    def _adoption_rows(self, flt: AuditFilter) -> list[DraftAdoption]:
        """Adoption rows the filter covers: workspace, ``since`` / ``until`` (on the reply's time), reason,
        conversation id, ``article`` (substring of a cited article id); ``channel=voice`` matches none."""
        D = DraftAdoption
        cond = []
        if flt.workspace:
            cond.append(D.workspace == flt.workspace)
        if flt.since is not None:
            cond.append(D.replied_at >= flt.since)
        if flt.until is not None:
            cond.append(D.replied_at < flt.until)
        if flt.reason:
            cond.append(D.reason == flt.reason)
        if flt.conversation_id:
            cond.append(D.conversation_id == flt.conversation_id)
        if flt.channel and flt.channel != "chat":
            return []
        with self.db.session() as s:
            rows = list(s.scalars(select(D).where(*cond).order_by(D.replied_at.desc(), D.key)))
        if flt.article:
            rows = [r for r in rows if any(flt.article in str(a.get("article_id", "")) for a in r.articles or [])]
        return rows

    def draft_adoption(self, flt: AuditFilter = AuditFilter(), *, limit: int = 50) -> dict:
        """What agents did with chat drafts, and what became of escalations a teammate answered.

        Returns:
            ``{**counts, "similarity_kind", "by_article": [{"article_id", "title", **counts}],
            "by_topic": [{"topic", **counts}], "by_team": [{"team_id", **counts}], "by_day": [{"date",
            **counts}], "escalations": {"answered", "answer_existed", "help_center_lacks", "items": [{"answer_id",
            "conversation_id", "reason", "question", "links", "gap", "replied_at"}]}}`` where counts are
            ``drafts`` (answer drafts a teammate replied after), ``sent_as_is``, ``edited``, ``not_used``,
            ``adoption_rate`` ((as is + edited) ÷ drafts), ``sent_as_is_rate`` and ``mean_similarity`` (kind
            ``word_indel_similarity``). Groups are largest first (articles and topics: up to ``limit``), days
            oldest first (UTC), escalation items newest first (up to ``limit``). A draft counts once per article
            it cites and once per topic (conversation tag; ``(untagged)`` without one).
        """
        rows = self._adoption_rows(flt)
        drafts = [r for r in rows if r.outcome in {o.value for o in DRAFT_OUTCOMES}]
        esc = [r for r in rows if r.outcome == AdoptionOutcome.ESCALATION_ANSWERED.value]
        by_article: dict[str, list] = {}
        titles: dict[str, str] = {}
        by_topic: dict[str, list] = {}
        by_team: dict[str, list] = {}
        by_day: dict[str, list] = {}
        for r in drafts:
            for a in {a.get("article_id"): a for a in r.articles or []}.values():
                by_article.setdefault(a.get("article_id"), []).append(r)
                titles.setdefault(a.get("article_id"), a.get("title") or "")
            for t in r.topics or ["(untagged)"]:
                by_topic.setdefault(t, []).append(r)
            by_team.setdefault(r.team_id or "(unassigned)", []).append(r)
            by_day.setdefault(iso(r.replied_at)[:10], []).append(r)

        def groups(d: dict[str, list], name: str) -> list[dict]:
            items = [{name: k, **_adoption_counts(v)} for k, v in d.items()]
            return sorted(items, key=lambda g: (-g["drafts"], g[name]))[:limit]

        questions: dict[str, str] = {}
        ids = [r.answer_id for r in esc[:limit] if r.answer_id]
        if ids:
            with self.db.session() as s:
                questions = dict(s.execute(select(AuditAnswer.id, AuditAnswer.question)
                                           .where(AuditAnswer.id.in_(ids))).all())
        return {
            **_adoption_counts(drafts), "similarity_kind": SIMILARITY_KIND,
            "by_article": [dict(g, title=titles.get(g["article_id"], "")) for g in groups(by_article, "article_id")],
            "by_topic": groups(by_topic, "topic"), "by_team": groups(by_team, "team_id"),
            "by_day": [{"date": d, **_adoption_counts(v)} for d, v in sorted(by_day.items())],
            "escalations": {
                "answered": len(esc), ANSWER_EXISTED: sum(1 for r in esc if r.reply_links),
                HELP_CENTER_LACKS: sum(1 for r in esc if not r.reply_links),
                "items": [{"answer_id": r.answer_id, "conversation_id": r.conversation_id, "reason": r.reason,
                           "question": questions.get(r.answer_id or ""), "links": list(r.reply_links or []),
                           "gap": _gap(r.reply_links), "replied_at": iso(r.replied_at)} for r in esc[:limit]]},
        }

    def export_adoption_csv(self, flt: AuditFilter = AuditFilter()) -> str:
        """CSV (header + one row per draft a teammate replied after, newest first) of
        :data:`~citedesk.serving.audit.models.ADOPTION_CSV_COLUMNS`; spreadsheet-safe cells."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(ADOPTION_CSV_COLUMNS)
        for r in self._adoption_rows(flt):
            arts = " ".join(str(a.get("article_id")) for a in r.articles or [])
            w.writerow([_csv_cell(v) for v in (
                r.key, iso(r.replied_at), r.conversation_id, r.answer_id, r.decision, r.reason, r.outcome,
                r.similarity, r.similarity_kind, r.retained, r.retained_kind, arts, " ".join(r.topics or []),
                r.team_id, r.admin_id, r.admin_name, " ".join(r.reply_links or []), r.note_part_id,
                r.reply_part_id)])
        return buf.getvalue()

    def human_replies(self, answer_ids: list[str]) -> dict[str, dict]:
        """For escalated answers a teammate then answered: answer id → ``{"gap": answer_existed |
        help_center_lacks, "links": [help-center URLs the reply linked]}``."""
        if not answer_ids:
            return {}
        D = DraftAdoption
        with self.db.session() as s:
            rows = s.execute(select(D.answer_id, D.reply_links).where(
                D.answer_id.in_(answer_ids), D.outcome == AdoptionOutcome.ESCALATION_ANSWERED.value)).all()
        return {a: {"gap": _gap(links), "links": list(links or [])} for a, links in rows}
