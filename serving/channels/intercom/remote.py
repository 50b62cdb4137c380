"""Who drafts the answer: the local pipeline or a remote citedesk API over HTTP (standalone webhooks process)."""

from __future__ import annotations

from typing import Protocol

import httpx

from citedesk.core.errors import CitedeskError
from citedesk.serving.answer.schemas import AnswerRequest, AnswerResponse

__all__ = ["AnswerService", "AnswerUnavailableError", "RemoteAnswerClient"]


class AnswerService(Protocol):
    """Anything that answers an :class:`AnswerRequest`: the local ``AnswerPipeline`` or a remote API."""

    async def answer(self, request: AnswerRequest) -> AnswerResponse: ...


class AnswerUnavailableError(CitedeskError):
    """The remote citedesk answer API could not be reached or answered an error (retried, then escalated)."""


class WebhookStoreError(CitedeskError):
    """The delivery could not be recorded (database unreachable or failing)."""


class RemoteAnswerClient:
    """``POST <base_url>/v1/answer`` over HTTP (the standalone ``citedesk webhooks``).

    Args:
        base_url: citedesk API root, e.g. ``http://citedesk:8000``.
        timeout: seconds per request (an LLM-backed answer can take several).
        api_key: sent as ``Authorization: Bearer`` when the API requires keys.
    """

    def __init__(self, base_url: str, *, timeout: float = 60.0, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: httpx.AsyncClient | None = None

    async def answer(self, request: AnswerRequest) -> AnswerResponse:
        """Answer remotely.

        Raises:
            AnswerUnavailableError: connection error, timeout, a non-200 status or an unreadable body.
        """
        if self._client is None:
            self._client = httpx.AsyncClient(base_url=self.base_url, timeout=self.timeout, headers=self._headers)
        try:
            r = await self._client.post("/v1/answer", json=request.model_dump(mode="json", exclude_none=True))
        except httpx.HTTPError as exc:
            raise AnswerUnavailableError(f"answer API at {self.base_url} unreachable: "
                                         f"{type(exc).__name__}: {exc}") from exc
        if r.status_code != 200:
            raise AnswerUnavailableError(f"answer API at {self.base_url} answered HTTP {r.status_code}: "
                                         f"{r.text[:300]}")
        try:
            return AnswerResponse.model_validate(r.json())
        except ValueError as exc:
            raise AnswerUnavailableError(f"answer API at {self.base_url} sent an unreadable body: {exc}") from exc

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
