"""Intercom webhooks: signature verification and notification / conversation parsing (pure, no SDK).

Intercom POSTs a ``notification_event`` envelope to the subscriber URL::

    {"type": "notification_event", "app_id": "abc123", "id": "notif_…", "topic": "conversation.user.replied",
     "data": {"type": "notification_event_data", "item": {…the affected object…}},
     "delivery_attempts": 1, "first_sent_at": 1700000000, "created_at": 1700000000, …}

and signs the raw body: header ``X-Hub-Signature: sha1=<40 hex>``, the HMAC-SHA1 of the body bytes keyed
with the app's client secret. Deliveries are at-least-once and may arrive out of order; the ``id`` of a
notification is stable across redeliveries. ``item`` is a ``conversation`` object for the conversation
topics and an ``article`` object for the article topics (shapes of Intercom API 2.16, the same as
``GET /conversations/{id}`` and ``GET /articles/{id}``); the ``ping`` topic carries
``{"type": "ping", "message": …}``.

This module does no I/O: :func:`verify_signature`, :func:`parse_notification` and
:func:`parse_conversation` turn bytes / JSON into typed values that the connector
(``connectors/intercom.py``) and the drafting worker (``serving/channels/intercom/drafting.py``) share.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ADMIN_REPLY_TOPICS",
    "ARTICLE_TOPICS",
    "CONVERSATION_TOPICS",
    "CUSTOMER_AUTHOR_TYPES",
    "PING_TOPIC",
    "SIGNATURE_HEADER",
    "Conversation",
    "ConversationMessage",
    "Notification",
    "WebhookPayloadError",
    "parse_conversation",
    "parse_notification",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Hub-Signature"
"""Header carrying ``sha1=<hex HMAC-SHA1 of the raw body>``."""

PING_TOPIC = "ping"
CONVERSATION_TOPICS = frozenset({"conversation.user.created", "conversation.user.replied"})
"""Topics whose ``item`` is a conversation that a customer just wrote in."""
ADMIN_REPLY_TOPICS = frozenset({"conversation.admin.replied"})
"""Topics whose ``item`` is a conversation an agent (admin) just replied in (draft adoption)."""
ARTICLE_TOPICS = frozenset({
    "article.created", "article.updated", "article.published", "article.unpublished", "article.deleted",
})
"""Topics whose ``item`` is a help-center article."""

CUSTOMER_AUTHOR_TYPES = frozenset({"user", "lead", "contact"})
"""``author.type`` values of messages written by the customer (the others are admins, bots, teams)."""

_CUSTOMER_PART_TYPES = frozenset({"comment", "open", "conversation_rating_remark_added"})
"""``part_type`` of conversation parts that carry a customer's message (notes are admin-only)."""

_AGENT_PART_TYPES = frozenset({"comment", "assign_and_reopen", "assignment", "open", "close", "quick_reply"})
"""``part_type`` of admin / bot parts that the customer saw (``note`` parts are internal)."""


class WebhookPayloadError(ValueError):
    """The body is not a notification envelope (bad JSON, missing ``topic`` / ``id`` / ``data.item``)."""


def sign(body: bytes, secret: str) -> str:
    """Signature Intercom sends for ``body``: ``"sha1=" + hex(HMAC-SHA1(secret, body))``.

    Args:
        body: the raw request body, byte for byte.
        secret: the Intercom app's client secret.

    Returns:
        The ``X-Hub-Signature`` header value (45 characters).
    """
    return "sha1=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha1).hexdigest()


def verify_signature(body: bytes, header: str | None, secret: str) -> bool:
    """Check ``X-Hub-Signature`` against the raw body in constant time.

    Args:
        body: the raw request body (never a re-serialised JSON: one changed byte fails the check).
        header: the header value, ``None`` when absent.
        secret: the client secret; an empty secret never verifies.

    Returns:
        True only when ``header`` is exactly ``sha1=`` plus the lower-case hex digest.
    """
    if not secret or not header:
        return False
    expected = sign(body, secret).encode("ascii")
    given = header.strip().encode("utf-8", errors="replace")
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class Notification:
    """One webhook delivery.

    Attributes:
        id: notification id, stable across redeliveries (the idempotency key).
        topic: e.g. ``"conversation.user.replied"`` or ``"article.updated"``.
        app_id: Intercom workspace (app) id.
        created_at: when Intercom created the notification, epoch seconds (0 if absent).
        delivery_attempts: Intercom's attempt counter (1 on first delivery).
        item: the affected object (``data.item``) as JSON.
    """

    id: str
    topic: str
    app_id: str
    created_at: int
    delivery_attempts: int
    item: dict[str, Any]

    @property
    def item_id(self) -> str | None:
        """``item.id`` as a string (conversation or article id), ``None`` when absent."""
        value = self.item.get("id")
        return None if value is None or value == "" else str(value)


def parse_notification(body: bytes) -> Notification:
    """Parse a ``notification_event`` body.

    Args:
        body: raw JSON bytes (already signature-checked).

    Returns:
        The :class:`Notification`.

    Raises:
        WebhookPayloadError: invalid JSON or UTF-8, not an object, or ``id`` / ``topic`` / ``data.item``
            missing or of the wrong type.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookPayloadError(f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise WebhookPayloadError("body is not a JSON object")
    topic = payload.get("topic")
    if not isinstance(topic, str) or not topic:
        raise WebhookPayloadError("notification has no topic")
    notification_id = payload.get("id")
    if not isinstance(notification_id, (str, int)) or isinstance(notification_id, bool) or notification_id == "":
        raise WebhookPayloadError("notification has no id")
    data = payload.get("data")
    item = data.get("item") if isinstance(data, dict) else None
    if not isinstance(item, dict):
        raise WebhookPayloadError("notification has no data.item object")
    return Notification(
        id=str(notification_id)[:200],
        topic=topic,
        app_id=str(payload.get("app_id") or ""),
        created_at=_int(payload.get("created_at")),
        delivery_attempts=max(_int(payload.get("delivery_attempts")), 1),
        item=item,
    )


@dataclass(frozen=True)
class ConversationMessage:
    """One message of a conversation (its source message or a conversation part).

    Attributes:
        part_id: conversation part id; ``"source:<id>"`` for the message that opened the conversation.
        part_type: Intercom ``part_type`` (``comment``, ``note``, ``open``, …; ``source`` for the source).
        author_type: ``user`` / ``lead`` / ``contact`` (customer), ``admin``, ``bot``, ``team``.
        author_id: author id, ``""`` when unknown.
        body: HTML body as Intercom gives it (``""`` when empty; plain text in webhook payloads of API 2.15+).
        created_at: epoch seconds.
        author_name: the author's display name (``""`` when unknown).
        from_ai_agent: ``author.from_ai_agent`` (Intercom's own AI agent wrote it, not a teammate).
    """

    part_id: str
    part_type: str
    author_type: str
    author_id: str
    body: str
    created_at: int
    author_name: str = ""
    from_ai_agent: bool = False

    @property
    def from_customer(self) -> bool:
        """Written by the customer (and carrying a message)."""
        return (self.author_type in CUSTOMER_AUTHOR_TYPES
                and self.part_type in _CUSTOMER_PART_TYPES | {"source"} and bool(self.body.strip()))

    @property
    def seen_by_customer(self) -> bool:
        """A message of the visible thread (customer or agent), not an internal note or event."""
        if not self.body.strip():
            return False
        return self.from_customer or self.part_type in _AGENT_PART_TYPES | {"source"}


@dataclass(frozen=True)
class Conversation:
    """The parts of an Intercom ``conversation`` object the chat-draft channel needs.

    Attributes:
        id: conversation id.
        messages: source message then parts, oldest first (``created_at`` order, stable).
        tag_ids / tag_names: tags applied to the conversation; ``tags`` maps their ids to names.
        team_assignee_id / admin_assignee_id: current assignees (``""`` when unassigned).
        channel: ``channel.current`` (or ``initial``), e.g. ``messenger`` / ``email``; else
            ``source.type``; ``""`` when unknown.
        state: ``open`` / ``closed`` / ``snoozed``.
        priority: ``none`` / ``low`` / ``medium`` / ``high`` / ``urgent`` (``""`` when absent).
        custom_attributes: the conversation's custom attributes (scalars only: str, int, float, bool).
    """

    id: str
    messages: list[ConversationMessage] = field(default_factory=list)
    tag_ids: frozenset[str] = frozenset()
    tag_names: frozenset[str] = frozenset()
    team_assignee_id: str = ""
    admin_assignee_id: str = ""
    channel: str = ""
    state: str = ""
    priority: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    custom_attributes: dict[str, str | int | float | bool] = field(default_factory=dict)

    def latest_customer_message(self) -> ConversationMessage | None:
        """The newest message written by the customer, ``None`` when there is none."""
        return next((m for m in reversed(self.messages) if m.from_customer), None)

    def has_note_containing(self, marker: str) -> ConversationMessage | None:
        """An admin note or comment whose body contains ``marker`` (reconciliation of earlier posts)."""
        return next((m for m in self.messages
                     if m.author_type in {"admin", "bot"} and m.part_type in {"note", "comment"}
                     and marker in m.body), None)


def parse_conversation(item: dict[str, Any]) -> Conversation:
    """Read a ``conversation`` object (webhook ``item`` or ``GET /conversations/{id}`` body).

    Args:
        item: the JSON object (wire shape of Intercom API 2.16).

    Returns:
        The :class:`Conversation`.

    Raises:
        WebhookPayloadError: no ``id``, or ``conversation_parts`` / ``tags`` of the wrong shape.
    """
    if not isinstance(item, dict) or item.get("id") in (None, ""):
        raise WebhookPayloadError("conversation has no id")
    messages: list[ConversationMessage] = []
    source = item.get("source")
    if isinstance(source, dict):
        author = source.get("author") if isinstance(source.get("author"), dict) else {}
        messages.append(ConversationMessage(
            part_id=f"source:{source.get('id') or item['id']}", part_type="source",
            author_type=str(author.get("type") or ""), author_id=str(author.get("id") or ""),
            body=str(source.get("body") or ""), created_at=_int(item.get("created_at")),
            author_name=str(author.get("name") or "")))
    parts_obj = item.get("conversation_parts")
    parts = parts_obj.get("conversation_parts") if isinstance(parts_obj, dict) else None
    if parts_obj is not None and not isinstance(parts, list):
        raise WebhookPayloadError("conversation_parts is not a conversation_part.list")
    for part in parts or []:
        if not isinstance(part, dict) or part.get("id") in (None, ""):
            continue
        author = part.get("author") if isinstance(part.get("author"), dict) else {}
        messages.append(ConversationMessage(
            part_id=str(part["id"]), part_type=str(part.get("part_type") or ""),
            author_type=str(author.get("type") or ""), author_id=str(author.get("id") or ""),
            body=str(part.get("body") or ""), created_at=_int(part.get("created_at")),
            author_name=str(author.get("name") or ""), from_ai_agent=author.get("from_ai_agent") is True))
    messages.sort(key=lambda m: (m.part_type != "source", m.created_at))  # stable: keeps API order on ties
    tags_obj = item.get("tags")
    tags = tags_obj.get("tags") if isinstance(tags_obj, dict) else []
    if not isinstance(tags, list):
        raise WebhookPayloadError("tags is not a tag.list")
    tag_list = [t for t in tags if isinstance(t, dict)]
    channel_obj = item.get("channel") if isinstance(item.get("channel"), dict) else {}
    channel = channel_obj.get("current") or channel_obj.get("initial") or \
        (source.get("type") if isinstance(source, dict) else "") or ""
    attrs = item.get("custom_attributes") if isinstance(item.get("custom_attributes"), dict) else {}
    return Conversation(
        id=str(item["id"]),
        messages=messages,
        tag_ids=frozenset(str(t["id"]) for t in tag_list if t.get("id") not in (None, "")),
        tag_names=frozenset(str(t["name"]) for t in tag_list if t.get("name")),
        tags={str(t["id"]): str(t.get("name") or "") for t in tag_list if t.get("id") not in (None, "")},
        team_assignee_id=_id(item.get("team_assignee_id")),
        admin_assignee_id=_id(item.get("admin_assignee_id")),
        channel=str(channel),
        state=str(item.get("state") or ""),
        priority=str(item.get("priority") or ""),
        custom_attributes={str(k): v for k, v in attrs.items() if isinstance(v, (str, int, float, bool))},
    )


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return 0


def _id(value: Any) -> str:
    return "" if value in (None, "", 0) else str(value)
