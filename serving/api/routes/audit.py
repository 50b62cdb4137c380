"""Audit endpoints: JSON under ``/v1/audit`` and a CSV export (the ``/audit`` page is in ``audit_pages.py``).

Scopes (see :mod:`citedesk.serving.api.auth`): reading needs ``audit-read``, marking citations and answers needs
``audit-write``. The page authenticates like the API (``Authorization: Bearer``) or, for a browser, with
the key entered once on ``/audit/login`` (kept in an HttpOnly, SameSite=Strict cookie).

Filters (query parameters of the list, the CSV export and the reports; empty values are ignored):
``escalated`` (true|false), ``low_confidence`` (true: confidence below ``audit.low_confidence``),
``max_confidence`` (0..1), ``since`` / ``until`` (``YYYY-MM-DD``, UTC, both inclusive, or ISO 8601
date-times), ``article`` (substring of a cited article id), ``feedback`` (unreviewed | reviewed | helpful |
unhelpful | citation_incorrect | citation_correct), ``channel``, ``reason``, ``conversation_id``, ``q``
(question contains).
"""

from __future__ import annotations

import logging
import re
from datetime import date, datetime, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel

from citedesk.core.errors import CitedeskError
from citedesk.core.types import Channel
from citedesk.serving.answer.schemas import ErrorResponse
from citedesk.serving.api.auth import Principal, require_scope
from citedesk.serving.audit.filters import AuditFilter
from citedesk.serving.audit.log import AuditLog
from citedesk.serving.audit.models import FEEDBACK_STATES

log = logging.getLogger(__name__)

PAGE_SIZE = 50

Reader = Annotated[Principal, Depends(require_scope("audit-read"))]
Writer = Annotated[Principal, Depends(require_scope("audit-write"))]
AnswerId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$", description="audit record id")]


def get_audit(request: Request) -> AuditLog:
    """The app's audit log (dependency)."""
    return request.app.state.container.audit


Audit = Annotated[AuditLog, Depends(get_audit)]


def _when(value: str, name: str, *, end: bool) -> float:
    """``YYYY-MM-DD`` (UTC day; ``end`` → the next midnight, so the day is included) or ISO 8601 → epoch s."""
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            return _day(date.fromisoformat(value), end=end)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    except ValueError:
        raise HTTPException(422, f"{name} must be a date (YYYY-MM-DD) or an ISO 8601 date-time, not {value!r}") from None


def _day(d: date, *, end: bool) -> float:
    """Start of UTC day ``d`` (``end``: start of the next day) in epoch seconds."""
    return datetime.combine(d, datetime.min.time(), timezone.utc).timestamp() + (86400 if end else 0)


def build_filter(request: Request, *, escalated: bool | None = None, low_confidence: bool = False,
                 max_confidence: float | None = None, since: float | None = None, until: float | None = None,
                 article: str | None = None, feedback: str | None = None, channel: str | None = None,
                 reason: str | None = None, conversation_id: str | None = None, q: str | None = None,
                 workspace: str | None = None, request_id: str | None = None) -> AuditFilter:
    """Parsed filter values → :class:`AuditFilter`.

    An inverted date range matches nothing (it is not an error).

    Raises:
        RequestValidationError: an invalid value that got past parsing (422 naming the field).
    """
    cap = max_confidence
    if low_confidence:
        limit = request.app.state.container.audit.low_confidence
        cap = limit if cap is None else min(cap, limit)
    try:
        return AuditFilter(
            decision=None if escalated is None else ("escalate" if escalated else "answer"), max_confidence=cap,
            since=since, until=until, article=article or None, feedback=feedback or None, channel=channel or None,
            reason=reason or None, conversation_id=conversation_id or None, text=q or None, workspace=workspace,
            request_id=request_id or None)
    except ValueError as exc:
        field = "until" if "until" in str(exc) else "feedback" if "feedback" in str(exc) else "query"
        raise RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": str(exc),
                                       "input": request.query_params.get(field)}]) from exc


def tenant(who: Principal) -> str | None:
    """The workspace a caller may see: its key's tenant; None (all) for the anonymous principal."""
    return who.workspace if who.key_id is not None else None


def audit_filter(
    request: Request,
    who: Reader,
    escalated: Annotated[bool | None, Query(description="true: escalations only; false: answers only")] = None,
    low_confidence: Annotated[bool, Query(description="confidence below audit.low_confidence")] = False,
    max_confidence: Annotated[float | None, Query(ge=0.0, le=1.0, description="confidence below this")] = None,
    since: Annotated[date | None, Query(description="first day (UTC), inclusive")] = None,
    until: Annotated[date | None, Query(description="last day (UTC), inclusive")] = None,
    article: Annotated[str | None, Query(max_length=500, description="substring of a cited article id")] = None,
    feedback: Annotated[Literal[FEEDBACK_STATES] | None, Query(description="review state")] = None,  # type: ignore[valid-type]
    channel: Annotated[Channel | None, Query()] = None,
    reason: Annotated[str | None, Query(max_length=40, description="decision reason, e.g. low_confidence")] = None,
    conversation_id: Annotated[str | None, Query(max_length=200)] = None,
    q: Annotated[str | None, Query(max_length=200, description="question contains (case-insensitive)")] = None,
    request_id: Annotated[str | None, Query(max_length=64, description="X-Request-ID of the answering request")] = None,
) -> AuditFilter:
    """The JSON API's filter query parameters (typed; FastAPI answers 422 for bad values)."""
    return build_filter(
        request, escalated=escalated, low_confidence=low_confidence, max_confidence=max_confidence,
        since=_day(since, end=False) if since else None, until=_day(until, end=True) if until else None,
        article=article, feedback=feedback, channel=channel.value if channel else None, reason=reason,
        conversation_id=conversation_id, q=q, workspace=tenant(who), request_id=request_id)


def page_filter(request: Request, who: Reader) -> AuditFilter:
    """The HTML page's filter: the same parameters as :func:`audit_filter`, as an HTML form sends them
    (empty fields ignored; ``since`` / ``until`` may also be ISO 8601 date-times).

    Raises:
        HTTPException: 422 with a message for a value that does not parse.
    """
    p = {k: v.strip() for k, v in request.query_params.items() if v.strip()}

    def flag(name: str) -> bool | None:
        value = p.get(name, "").lower()
        if not value:
            return None
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise HTTPException(422, f"{name} must be true or false, not {value!r}")

    cap = None
    if "max_confidence" in p:
        try:
            cap = float(p["max_confidence"])
        except ValueError:
            cap = -1.0
        if not 0.0 <= cap <= 1.0:
            raise HTTPException(422, f"max_confidence must be a number in [0, 1], not {p['max_confidence']!r}")
    for name, limit in (("article", 500), ("q", 200), ("reason", 40), ("conversation_id", 200), ("channel", 16)):
        if len(p.get(name, "")) > limit:
            raise HTTPException(422, f"{name} is longer than {limit} characters")
    return build_filter(
        request, escalated=flag("escalated"), low_confidence=bool(flag("low_confidence")), max_confidence=cap,
        since=_when(p["since"], "since", end=False) if "since" in p else None,
        until=_when(p["until"], "until", end=True) if "until" in p else None, article=p.get("article"),
        feedback=p.get("feedback"), channel=p.get("channel"), reason=p.get("reason"),
        conversation_id=p.get("conversation_id"), q=p.get("q"), workspace=tenant(who))


Filter = Annotated[AuditFilter, Depends(audit_filter)]
PageFilter = Annotated[AuditFilter, Depends(page_filter)]


class FeedbackIn(BaseModel):
    """An answer's review: helpful (true), unhelpful (false) or cleared (null)."""

    helpful: bool | None


class MarkIn(BaseModel):
    """A citation's review: correct, incorrect or cleared (null)."""

    mark: Literal["correct", "incorrect"] | None


class AnswerPage(BaseModel):
    """A page of recorded answers (newest first)."""

    total: int
    limit: int
    offset: int
    items: list[dict]


def _not_found(answer_id: str) -> HTTPException:
    return HTTPException(404, f"no recorded answer {answer_id} (purged after the retention period, or never recorded)")


# -- JSON API ----------------------------------------------------------------------------------------

api = APIRouter(prefix="/v1/audit", tags=["audit"], responses={
    401: {"model": ErrorResponse, "description": "missing, unknown or revoked API key (when auth.enabled)"},
    403: {"model": ErrorResponse, "description": "the API key lacks the route's scope"}})
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no such recorded answer (or citation)"}}


def csv_download(body: str, name: str) -> Response:
    """A CSV attachment named ``<name>-<UTC time YYYYmmdd-HHMMSS>.csv``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"'})


@api.get("/answers", response_model=AnswerPage)
def list_answers(_: Reader, audit: Audit, flt: Filter,
                 limit: Annotated[int, Query(ge=1, le=500)] = PAGE_SIZE,
                 offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> AnswerPage:
    """Recorded answers matching the filters, newest first."""
    total, items = audit.list(flt, limit=limit, offset=offset)
    return AnswerPage(total=total, limit=limit, offset=offset, items=items)


@api.get("/answers.csv", response_class=Response,
         responses={200: {"content": {"text/csv": {}}, "description": "one row per answer"}})
def export_answers(_: Reader, audit: Audit, flt: Filter) -> Response:
    """CSV export of the recorded answers matching the filters (newest first)."""
    return csv_download(audit.export_csv(flt), "citedesk-audit")


@api.get("/answers/{answer_id}", responses=NOT_FOUND)
def get_answer(who: Reader, answer_id: AnswerId, audit: Audit) -> dict:
    """Everything recorded about one answer; each citation has ``revision_status`` (current | changed |
    deleted | unknown) against the index now."""
    record = audit.get(answer_id, workspace=tenant(who))
    if record is None:
        raise _not_found(answer_id)
    return record


@api.put("/answers/{answer_id}/feedback", responses=NOT_FOUND)
def put_feedback(who: Writer, answer_id: AnswerId, body: FeedbackIn, audit: Audit) -> dict:
    """Mark the answer helpful / unhelpful (``null`` clears)."""
    try:
        return audit.set_feedback(answer_id, body.helpful, by=who.label, workspace=tenant(who))
    except KeyError:
        raise _not_found(answer_id) from None


@api.put("/answers/{answer_id}/citations/{marker}/mark", responses=NOT_FOUND)
def put_mark(who: Writer, answer_id: AnswerId, marker: Annotated[int, PathParam(ge=1, le=100)], body: MarkIn,
             audit: Audit) -> dict:
    """Mark citation ``[marker]`` correct / incorrect (``null`` clears)."""
    try:
        return audit.mark_citation(answer_id, marker, body.mark, by=who.label, workspace=tenant(who))
    except KeyError:
        raise HTTPException(404, f"answer {answer_id} has no citation [{marker}]") from None


@api.get("/reports/escalation-rate")
def report_escalation_rate(_: Reader, audit: Audit, flt: Filter) -> dict:
    """Escalated share of answers: overall, by reason, by channel and by day (UTC)."""
    return audit.escalation_rate(flt)


@api.get("/reports/answers-by-article")
def report_answers_by_article(_: Reader, audit: Audit, flt: Filter,
                              limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> list[dict]:
    """Articles by number of answers citing them, with their incorrect / correct marks."""
    return audit.answers_by_article(flt, limit=limit)


@api.get("/reports/changed-articles")
def report_changed_articles(_: Reader, audit: Audit, flt: Filter) -> list[dict]:
    """Articles changed or deleted after answers cited them (compared with the index now)."""
    return audit.changed_articles(flt)


@api.get("/reports/content-gaps", responses={503: {"model": ErrorResponse, "description": "embedding model unavailable"}})
def report_content_gaps(_: Reader, audit: Audit, flt: Filter) -> list[dict]:
    """Escalated questions without supporting content, grouped by similarity (embedding cosine)."""
    try:
        return audit.content_gaps(flt)
    except CitedeskError as exc:
        raise HTTPException(503, str(exc)) from exc


@api.get("/reports/draft-adoption")
def report_draft_adoption(_: Reader, audit: Audit, flt: Filter,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> dict:
    """Chat drafts: sent as is / edited / not used (with the reply's word_indel_similarity), by article cited,
    topic (conversation tag), agent team and day; escalations a teammate answered, with or without an article."""
    return audit.draft_adoption(flt, limit=limit)


@api.get("/reports/draft-adoption.csv", response_class=Response,
         responses={200: {"content": {"text/csv": {}}, "description": "one row per draft a teammate replied after"}})
def export_draft_adoption(_: Reader, audit: Audit, flt: Filter) -> Response:
    """CSV export of draft adoption (newest reply first)."""
    return csv_download(audit.export_adoption_csv(flt), "citedesk-draft-adoption")
