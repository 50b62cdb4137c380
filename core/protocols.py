"""Protocols between layers (structural typing; fakes implement them for real)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from pydantic import BaseModel

from citedesk.core.types import Article


class SourceFailure(BaseModel):
    """An article the source listed but that could not be turned into an :class:`Article`.

    The sync reports it as ``failed`` and keeps that article's existing points untouched.
    """

    article_id: str
    locale: str | None = None
    error: str


@runtime_checkable
class Connector(Protocol):
    """A source of published articles.

    Attributes:
        name: source name stored in every payload (``"intercom"``, ``"folder"``).
        workspace: tenant id stored in every payload.
    """

    name: str
    workspace: str

    def list_articles(self) -> Iterator[Article | SourceFailure]:
        """Yield every *published* article (one item per locale), newest ``updated_at`` first.

        Drafts and unpublished locales are not yielded (the sync deletes what is not yielded).

        Raises:
            ConnectorError: when the listing itself fails (after retries); the sync then
                deletes nothing.
        """
        ...

    def fetch_article(self, article_id: str) -> list[Article]:
        """Fetch one article's published locales (for webhooks / single-article resync).

        Returns:
            Published locales of the article; ``[]`` when it is deleted or unpublished.

        Raises:
            ConnectorError: on transport errors or 5xx after retries.
        """
        ...
