"""Which conversations get a draft, and the answer request built from a thread."""

from __future__ import annotations

from collections.abc import Callable

from citedesk.config.settings import IntercomDraftSettings
from citedesk.core.types import Channel, Turn
from citedesk.serving.answer.schemas import AnswerRequest
from citedesk.serving.channels.intercom.webhooks import Conversation, ConversationMessage

__all__ = ["MAX_QUESTION_CHARS", "MAX_TURN_CHARS", "build_request", "qualification_failure"]

MAX_QUESTION_CHARS = 2000
MAX_TURN_CHARS = 8000


def qualification_failure(conversation: Conversation, config: IntercomDraftSettings) -> str | None:
    """Why a conversation is not drafted, or ``None`` when it qualifies.

    Returns:
        ``"not_tagged"`` (no tag of ``qualify_tags``), ``"excluded_tag"``, ``"other_inbox"`` (team not in
        ``qualify_team_ids``), ``"other_channel"``, or ``None``.
    """
    tags = conversation.tag_ids | conversation.tag_names
    if config.qualify_tags and not tags & set(config.qualify_tags):
        return "not_tagged"
    if config.exclude_tags and tags & set(config.exclude_tags):
        return "excluded_tag"
    if config.qualify_team_ids and conversation.team_assignee_id not in config.qualify_team_ids:
        return "other_inbox"
    if config.qualify_channels and conversation.channel not in config.qualify_channels:
        return "other_channel"
    return None


def build_request(conversation: Conversation, target: ConversationMessage, history_turns: int,
                  html_to_text: Callable[[str], str]) -> AnswerRequest:
    """The :class:`AnswerRequest` for the latest customer message: HTML stripped, earlier turns as history, the
    conversation's tags (names and ids), custom attributes and priority for the workspace guidance rules.

    Args:
        conversation: the thread, fetched fresh.
        target: the customer message answered.
        history_turns: earlier visible messages passed as history.
        html_to_text: turns a part's HTML body into plain text (the composition root passes ingest's cleaner).

    Raises:
        ValueError: the message has no text once cleaned (e.g. only an image).
    """
    question = html_to_text(target.body)[:MAX_QUESTION_CHARS].strip()
    if not question:
        raise ValueError("empty_message")
    history: list[Turn] = []
    if history_turns:
        earlier = [m for m in conversation.messages if m.seen_by_customer]
        idx = next((i for i, m in enumerate(earlier) if m.part_id == target.part_id), len(earlier))
        for m in earlier[:idx][-history_turns:]:
            text = html_to_text(m.body)[:MAX_TURN_CHARS].strip()
            if text:
                history.append(Turn(role="user" if m.from_customer else "agent", text=text))
    attributes = dict(list(conversation.custom_attributes.items())[:49])
    if conversation.priority:
        attributes.setdefault("priority", conversation.priority)
    tags = sorted(conversation.tag_names | conversation.tag_ids)[:50]
    return AnswerRequest(question=question, history=history, channel=Channel.CHAT,
                         conversation_id=conversation.id[:200], tags=[t[:200] for t in tags], attributes=attributes)
