"""Tables of the chat-draft channel (revision 0002): webhook deliveries and the draft per customer message."""

from __future__ import annotations

from enum import StrEnum

import time
from typing import Any

from sqlalchemy import JSON, Float, Integer, String, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from citedesk.serving.audit.models import DraftAdoption
from citedesk.serving.channels.intercom.webhooks import Notification
from citedesk.serving.db.engine import Base, Database

__all__ = ["CLAIM_LEASE_S", "ConversationDraft", "DeliveryStatus", "DeliveryStore", "DraftStatus", "WebhookDelivery"]

CLAIM_LEASE_S = 300.0
"""Seconds a claimed, unposted draft belongs to the notification that claimed it (then others take over)."""


class DeliveryStatus(StrEnum):
    """``webhook_deliveries.status``: where one notification id is in its life."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"


UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.PROCESSING)
"""Statuses re-queued by the next start."""


class DraftStatus(StrEnum):
    """``conversation_drafts.status``: ``claimed`` (being drafted, or its post's outcome unknown) or ``posted``."""

    CLAIMED = "claimed"
    POSTED = "posted"


class WebhookDelivery(Base):
    """One notification id as received (``status``: pending | processing | done | skipped | failed)."""

    __tablename__ = "webhook_deliveries"

    notification_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    topic: Mapped[str] = mapped_column(String(100))
    item_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), index=True)
    received_at: Mapped[float] = mapped_column(Float)
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[float | None] = mapped_column(Float)


class ConversationDraft(Base):
    """The note (or reply) for one customer message: ``key`` = ``<conversation id>:<part id>``.

    ``status`` is ``claimed`` (a worker is drafting it, or its post's outcome is unknown) or ``posted``.
    """

    __tablename__ = "conversation_drafts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(100), index=True)
    part_id: Mapped[str] = mapped_column(String(200))
    ref: Mapped[str] = mapped_column(String(40))
    notification_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    message_type: Mapped[str | None] = mapped_column(String(16))
    note_part_id: Mapped[str | None] = mapped_column(String(200))
    decision: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(40))
    claimed_at: Mapped[float] = mapped_column(Float)
    posted_at: Mapped[float | None] = mapped_column(Float)
    answer: Mapped[str | None] = mapped_column(Text)  # revision 0006: the drafted answer ("" on escalation)
    citations: Mapped[list | None] = mapped_column(JSON)  # revision 0006: [{article_id, title, url}]
    answer_id: Mapped[str | None] = mapped_column(String(32))  # revision 0006: its audit record


class DeliveryStore:
    """Durable state of the webhook worker: deliveries by notification id, drafts by customer message.

    Blocking (SQLAlchemy sessions): the worker calls it through ``anyio.to_thread``.

    Args:
        db: relational store migrated to revision 0002 or later.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, n: Notification, raw: bytes) -> str:
        """Insert a received notification as ``pending``: ``"queued"``, or ``"duplicate"`` (its counter bumped)."""
        try:
            with self.db.session() as s:
                s.add(WebhookDelivery(notification_id=n.id, topic=n.topic, item_id=n.item_id,
                                      payload=raw.decode("utf-8", errors="replace"), status=DeliveryStatus.PENDING,
                                      received_at=time.time(), deliveries=1, attempts=0))
            return "queued"
        except IntegrityError:
            with self.db.session() as s:  # atomic increment: parallel redeliveries all count
                s.execute(update(WebhookDelivery).where(WebhookDelivery.notification_id == n.id)
                          .values(deliveries=WebhookDelivery.deliveries + 1))
            return "duplicate"

    def unfinished_ids(self) -> list[str]:
        """Ids still pending or processing, oldest first (re-queued on start)."""
        with self.db.session() as s:
            return list(s.scalars(select(WebhookDelivery.notification_id)
                                  .where(WebhookDelivery.status.in_(UNFINISHED))
                                  .order_by(WebhookDelivery.received_at)))

    def unfinished(self) -> int:
        """Notifications received but not finished (pending, processing or waiting for a retry)."""
        with self.db.session() as s:
            return s.scalar(select(func.count()).select_from(WebhookDelivery)
                            .where(WebhookDelivery.status.in_(UNFINISHED))) or 0

    def delivery(self, notification_id: str) -> dict[str, Any] | None:
        """The delivery row as a dict (status, attempts, deliveries, outcome, error), or ``None``."""
        with self.db.session() as s:
            row = s.get(WebhookDelivery, notification_id)
            if row is None:
                return None
            return {c: getattr(row, c) for c in ("notification_id", "topic", "item_id", "status", "deliveries",
                                                 "attempts", "outcome", "error")}

    def drafts(self, conversation_id: str) -> list[dict[str, Any]]:
        """Draft rows of a conversation (key, status, decision, reason, note_part_id), oldest first."""
        with self.db.session() as s:
            rows = s.scalars(select(ConversationDraft).where(ConversationDraft.conversation_id == conversation_id)
                             .order_by(ConversationDraft.claimed_at))
            return [{c: getattr(r, c) for c in ("key", "part_id", "status", "message_type", "decision", "reason",
                                                "note_part_id", "notification_id")} for r in rows]

    def begin(self, ident: str) -> tuple[str, int] | None:
        """Mark a delivery ``processing`` and count the attempt: ``(payload, attempts)``, or None when finished."""
        with self.db.session() as s:
            row = s.get(WebhookDelivery, ident)
            if row is None or row.status not in UNFINISHED:
                return None
            row.status = DeliveryStatus.PROCESSING
            row.attempts += 1
            return row.payload, row.attempts

    def finish(self, ident: str, status: str, outcome: str | None, error: str | None) -> None:
        """Record the outcome of one attempt (``pending`` again for a retry)."""
        with self.db.session() as s:
            row = s.get(WebhookDelivery, ident)
            if row is None:
                return
            row.status = status
            row.outcome = outcome[:200] if outcome else outcome
            row.error = error
            row.finished_at = time.time() if status not in UNFINISHED else None

    def claim(self, key: str, conversation_id: str, part_id: str, ref: str, notification_id: str) -> str:
        """Claim the draft for ``key``: ``new`` / ``takeover`` (ours to write), ``posted`` or ``busy``."""
        now = time.time()
        try:
            with self.db.session() as s:
                row = s.get(ConversationDraft, key)
                if row is None:
                    s.add(ConversationDraft(key=key, conversation_id=conversation_id, part_id=part_id, ref=ref,
                                            notification_id=notification_id, status=DraftStatus.CLAIMED, claimed_at=now))
                    return "new"
                if row.status == DraftStatus.POSTED:
                    return "posted"
                if row.notification_id == notification_id or now - row.claimed_at > CLAIM_LEASE_S:
                    row.notification_id, row.claimed_at = notification_id, now
                    return "takeover"
                return "busy"
        except IntegrityError:  # another process inserted it between our read and write
            return "busy"

    def posted(self, key: str, note_part_id: str, message_type: str, decision: str | None,
               reason: str | None, *, answer: str | None = None, citations: list[dict] | None = None,
               answer_id: str | None = None) -> None:
        """Mark the draft for ``key`` posted as part ``note_part_id`` (with the draft's text, citations and
        audit record id when known, for draft adoption)."""
        with self.db.session() as s:
            row = s.get(ConversationDraft, key)
            if row is not None:
                row.status, row.note_part_id, row.message_type = DraftStatus.POSTED, note_part_id, message_type
                row.decision, row.reason, row.posted_at = decision, reason, time.time()
                row.answer, row.citations, row.answer_id = answer, citations, answer_id

    def posted_drafts(self, conversation_id: str) -> list[ConversationDraft]:
        """Posted drafts of a conversation (detached rows), oldest first."""
        with self.db.session() as s:
            return list(s.scalars(select(ConversationDraft).where(
                ConversationDraft.conversation_id == conversation_id, ConversationDraft.status == DraftStatus.POSTED)
                .order_by(ConversationDraft.posted_at)))

    def adopted_keys(self, keys: list[str]) -> set[str]:
        """Which of these draft keys already have an adoption record."""
        if not keys:
            return set()
        with self.db.session() as s:
            return set(s.scalars(select(DraftAdoption.key).where(DraftAdoption.key.in_(keys))))

    def record_adoption(self, row: DraftAdoption) -> bool:
        """Insert an adoption record: False when one exists for the draft already (a redelivery, a race)."""
        try:
            with self.db.session() as s:
                s.add(row)
            return True
        except IntegrityError:
            return False

    def release(self, key: str) -> None:
        """Drop an unposted claim (the message will not be drafted, e.g. it had no text)."""
        with self.db.session() as s:
            row = s.get(ConversationDraft, key)
            if row is not None and row.status == DraftStatus.CLAIMED:
                s.delete(row)
