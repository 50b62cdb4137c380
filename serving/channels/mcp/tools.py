"""The knowledge tools behind ``citedesk mcp``: ``answer`` and ``search_help_center``, bound to one caller.

Free of the MCP SDK (``serving/channels/mcp/server.py`` registers these methods as MCP tools). The caller is
resolved once, from the API key the server was started with: its workspace is the only one searched, its
rate limit applies to every call, and every answer is recorded in the audit trail like an API answer.
"""

from __future__ import annotations

from typing import Literal

import anyio
from fastapi import HTTPException
from pydantic import BaseModel, Field

from citedesk.core.errors import CitedeskError
from citedesk.core.types import Turn
from citedesk.retrieval.store import SearchFilter
from citedesk.serving.answer.grounding import best_quote
from citedesk.serving.answer.schemas import AnswerRequest
from citedesk.serving.api.auth import Principal
from citedesk.serving.container import Container

__all__ = ["AnswerResult", "KnowledgeTools", "SearchHit", "SearchResult", "ToolCallError", "bind_caller"]


class ToolCallError(CitedeskError):
    """A tool call refused (bad key, rate limit, index unavailable); the MCP client sees the message."""


def bind_caller(container: Container, api_key: str | None) -> Principal:
    """The principal the server acts as.

    With ``auth.enabled`` a key with scope ``answer`` is required; without, the anonymous principal of the
    default workspace is used unless a valid key is given (then its workspace).

    Raises:
        ToolCallError: missing, unknown, revoked or under-scoped key.
    """
    auth = container.authenticator
    if not api_key:
        if auth.enabled:
            raise ToolCallError("auth.enabled is on: pass an API key with scope 'answer' (--api-key or "
                                "CITEDESK_API_KEY; create one with `citedesk keys create --scope answer`)")
        return auth.anonymous
    principal = auth.store.verify(api_key)
    if principal is None:
        raise ToolCallError("invalid API key: it is malformed, unknown or revoked")
    if "answer" not in principal.scopes:
        raise ToolCallError(f"API key '{principal.name}' lacks scope 'answer'")
    return principal


class Source(BaseModel):
    """A citation of an answer: the article and the quoted span that supports it."""

    marker: int = Field(description="the [n] marker in the answer text")
    article_id: str
    title: str
    url: str | None
    quote: str = Field(description="verbatim span of the article's current revision")


class AnswerResult(BaseModel):
    """``answer``'s result: a grounded answer with sources, or an escalation (``answer`` empty) with a
    ``handoff_summary`` for the human who takes over."""

    decision: Literal["answer", "escalate"]
    reason: str = Field(description="grounded, or why it escalated (no_evidence, low_confidence, ...)")
    answer: str = Field(description="answer text with [n] markers; empty on escalate")
    short_answer: str | None = Field(None, description="the asked value (a table cell, a quantity with its unit), "
                                                       "verbatim from the answer, or Yes/No for a yes/no question; "
                                                       "null when the sentences answer")
    sources: list[Source] = Field(default_factory=list)
    confidence: float
    confidence_kind: str
    handoff_summary: str | None = None


class SearchHit(BaseModel):
    """One help-center passage."""

    rank: int
    article_id: str
    title: str
    url: str | None
    heading: str = Field(description="the section the passage is in")
    quote: str = Field(description="the passage's sentences closest to the query, verbatim")
    score: float
    score_kind: str = Field(description="rrf (hybrid), cosine (dense), bm25 (sparse) or rerank")


class SearchResult(BaseModel):
    """``search_help_center``'s result, best first."""

    hits: list[SearchHit]


class KnowledgeTools:
    """``answer`` and ``search_help_center`` for one caller.

    Args:
        container: the composition root (pipeline, retriever, rate limiter).
        caller: the bound principal (:func:`bind_caller`).
    """

    def __init__(self, container: Container, caller: Principal) -> None:
        self.container = container
        self.caller = caller

    @property
    def workspace(self) -> str:
        """The tenant searched."""
        return self.caller.workspace

    def _limit(self) -> None:
        limiter = self.container.rate_limiter
        if limiter is None:
            return
        try:
            limiter.check(self.caller.key_id or "mcp:anonymous")
        except HTTPException as exc:
            raise ToolCallError(str(exc.detail)) from None

    async def answer(self, question: str, history: list[Turn] | None = None) -> AnswerResult:
        """Answer a customer's question from the help center, with sources, or escalate.

        Args:
            question: the customer's latest message (1–2000 characters).
            history: earlier turns, oldest first (``{"role": "user"|"assistant", "text": ...}``).

        Raises:
            ToolCallError: rate limit exceeded, index unavailable, or an invalid question.
        """
        self._limit()
        try:
            request = AnswerRequest(question=question, history=(history or [])[-50:])
        except ValueError as exc:
            raise ToolCallError(f"invalid question: {exc}") from None
        try:
            r = await self.container.pipeline.answer(request, workspace=self.workspace)
        except CitedeskError as exc:
            raise ToolCallError(f"the help center could not be searched: {exc}") from None
        return AnswerResult(
            decision=r.decision.value, reason=r.reason.value, answer=r.answer, short_answer=r.short_answer,
            confidence=r.confidence,
            confidence_kind=r.confidence_kind, handoff_summary=r.handoff_summary,
            sources=[Source(marker=c.marker, article_id=c.article_id, title=c.title, url=c.url, quote=c.quote)
                     for c in r.citations])

    async def search_help_center(self, query: str, top_k: int = 5) -> SearchResult:
        """Search the help center: the passages closest to ``query``, best first.

        Args:
            query: what to look for (1–2000 characters).
            top_k: passages to return (1–20).

        Raises:
            ToolCallError: rate limit exceeded, index unavailable, or invalid arguments.
        """
        if not query.strip() or len(query) > 2000:
            raise ToolCallError("query must have 1 to 2000 characters")
        if not 1 <= top_k <= 20:
            raise ToolCallError("top_k must be between 1 and 20")
        self._limit()
        c = self.container
        try:
            result = await anyio.to_thread.run_sync(
                lambda: c.retriever.retrieve(query, SearchFilter(workspace=self.workspace), top_k=top_k))
        except CitedeskError as exc:
            raise ToolCallError(f"the help center could not be searched: {exc}") from None
        hits = []
        for i, h in enumerate(result.hits, start=1):
            quote, _, _ = best_quote(h, [query], c.sparse, max_chars=600)
            hits.append(SearchHit(rank=i, article_id=h.article_id, title=h.title, url=h.url, heading=h.heading,
                                  quote=quote, score=h.score, score_kind=h.score_kind.value))
        return SearchResult(hits=hits)
