"""Intercom conversation client of the chat-draft channel: read a thread, post notes / replies, tag, assign.

Built on the SDK adapter :class:`citedesk.connectors.intercom_api.IntercomApi` (the one module importing
python-intercom); this module holds what the channel means by those calls (parsed threads, the id of the part
it created).
"""

from __future__ import annotations

from citedesk.connectors.intercom_api import IntercomApi
from citedesk.core.errors import ConfigError, ConnectorError
from citedesk.serving.channels.intercom.webhooks import Conversation, WebhookPayloadError, parse_conversation

__all__ = ["IntercomConversations"]

MESSAGE_TYPES = frozenset({"note", "comment"})
"""Admin reply kinds the channel posts: an internal ``note`` or a ``comment`` the customer sees."""


class IntercomConversations:
    """Conversation operations over one SDK session (not thread-safe, like the session).

    Args:
        api: the SDK session (e.g. ``IntercomConnector.api``, so a worker shares one pool).
    """

    def __init__(self, api: IntercomApi) -> None:
        self.api = api

    def fetch_conversation(self, conversation_id: str) -> Conversation:
        """Fetch one conversation with its parts (``GET /conversations/{id}``, HTML bodies).

        Args:
            conversation_id: Intercom conversation id.

        Returns:
            The parsed :class:`Conversation` (source message then parts).

        Raises:
            ConnectorError: 401 / 404 / a status that survived the retries, Intercom unreachable, or a
                payload that is not a conversation.
        """
        item = self.api.find_conversation(conversation_id)
        try:
            return parse_conversation(item)
        except WebhookPayloadError as exc:
            raise ConnectorError(f"Intercom answered GET /conversations/{conversation_id} with a malformed "
                                 f"conversation: {exc}") from exc

    def reply(self, conversation_id: str, *, admin_id: str, body: str, message_type: str = "note") -> str:
        """Post an admin reply (``POST /conversations/{id}/reply``): an internal note or a customer comment.

        Args:
            conversation_id: Intercom conversation id.
            admin_id: the admin the reply is authored by.
            body: HTML body (notes accept some HTML formatting).
            message_type: ``"note"`` (internal, default) or ``"comment"`` (seen by the customer).

        Returns:
            The id of the conversation part created (``""`` when the response lists none).

        Raises:
            ConfigError: ``message_type`` is neither ``note`` nor ``comment``.
            ConnectorError: as :meth:`fetch_conversation`. A read timeout leaves it unknown whether the
                part was created: callers reconcile by looking for it (see ``drafting.py``).
        """
        if message_type not in MESSAGE_TYPES:
            raise ConfigError(f"reply message_type must be note or comment, got {message_type!r}")
        result = self.api.reply_to_conversation(conversation_id, message_type=message_type, admin_id=admin_id,
                                                body=body)
        try:
            parts = parse_conversation(result).messages
        except WebhookPayloadError:
            return ""
        created = [m for m in parts if m.part_type == message_type and m.author_type == "admin"]
        return created[-1].part_id if created else ""

    def tag_conversation(self, conversation_id: str, *, tag_id: str, admin_id: str) -> None:
        """Apply an existing tag (``POST /conversations/{id}/tags``).

        Raises:
            ConnectorError: unknown conversation or tag (404), or as :meth:`fetch_conversation`.
        """
        self.api.tag_conversation(conversation_id, tag_id=tag_id, admin_id=admin_id)

    def assign_conversation(self, conversation_id: str, *, admin_id: str, team_id: str,
                            body: str | None = None) -> None:
        """Assign the conversation to a team (``POST /conversations/{id}/parts``, ``message_type: assignment``).

        Args:
            conversation_id: Intercom conversation id.
            admin_id: the admin performing the assignment.
            team_id: the team (inbox) that gets the conversation.
            body: optional note shown with the assignment.

        Raises:
            ConnectorError: as :meth:`fetch_conversation`.
        """
        self.api.assign_conversation(conversation_id, admin_id=admin_id, team_id=team_id, body=body)
