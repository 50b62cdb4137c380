"""Shared FastAPI dependencies: the container's components and the authenticated, rate-limited caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from citedesk.serving.answer.pipeline import AnswerPipeline
from citedesk.serving.api.auth import Principal, require_scope
from citedesk.serving.container import Container

__all__ = ["Caller", "ContainerDep", "Pipeline", "WsCaller", "answer_principal", "get_container", "get_pipeline"]


def get_container(request: Request) -> Container:
    """The app's composition root (``app.state.container``)."""
    return request.app.state.container


def get_pipeline(request: Request) -> AnswerPipeline:
    """The app's answer pipeline (dependency)."""
    return request.app.state.container.pipeline


def answer_principal(request: Request, principal: Annotated[Principal, Depends(require_scope("answer"))]
                     ) -> Principal:
    """The caller (401/403 when auth is on and the key lacks ``answer``), rate-limited per key (429)."""
    limiter = request.app.state.container.rate_limiter
    if limiter is not None:
        client = request.client.host if request.client else "unknown"
        limiter.check(principal.key_id or f"anonymous:{client}")
    return principal


ContainerDep = Annotated[Container, Depends(get_container)]
Pipeline = Annotated[AnswerPipeline, Depends(get_pipeline)]
Caller = Annotated[Principal, Depends(answer_principal)]
WsCaller = Annotated[Principal, Depends(require_scope("answer"))]
