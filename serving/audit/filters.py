"""Which recorded answers a list, export or report covers: :class:`AuditFilter` and its SQL conditions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import and_, exists, func
from sqlalchemy.orm import aliased

from citedesk.serving.audit.models import FEEDBACK_STATES, AuditAnswer, AuditCitation



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
        request_id: exact id of the HTTP request (``X-Request-ID``; on the JSON access-log line).
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
    request_id: str | None = None
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
    if f.request_id:
        cond.append(A.request_id == f.request_id)
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
