"""``POST /v1/chat/completions`` and ``GET /v1/models``: the OpenAI-compatible face of the answer pipeline.

For clients that already speak OpenAI's chat-completions protocol (Pipecat, LiveKit Agents, Vapi's custom LLM,
the ``openai`` SDKs). Same key scope (``answer``), tenant binding and rate limit as ``/v1/answer``. Every error of
these routes — including 401/403 from the key check, 429 from the rate limiter, invalid bodies and an
unreachable index — is answered in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sse_starlette.sse import EventSourceResponse

from citedesk.core.errors import GeneratorUnavailableError, IndexUnavailableError
from citedesk.serving.answer.schemas import ErrorResponse
from citedesk.serving.api.auth import Principal, require_scope
from citedesk.serving.api.deps import Caller, ContainerDep
from citedesk.serving.channels.chat_completions.schemas import (
    ChatCompletion, ChatCompletionChunk, ChatCompletionError, ChatCompletionRequest, ErrorBody, ModelCard, ModelList)

__all__ = ["router"]

log = logging.getLogger(__name__)

_HTTP_ERRORS = {  # status → (OpenAI error type, code)
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "insufficient_scope"),
    404: ("invalid_request_error", "not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
    503: ("server_error", "service_unavailable"),
}


def _openai_error(exc: Exception) -> ChatCompletionError:
    """Any error of these routes as a :class:`ChatCompletionError`; re-raises what it does not know."""
    if isinstance(exc, ChatCompletionError):
        return exc
    if isinstance(exc, RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        param = ".".join(loc) or None
        return ChatCompletionError(400, f"{param + ': ' if param else ''}{err.get('msg')}", param=param)
    if isinstance(exc, IndexUnavailableError):
        return ChatCompletionError(503, f"search index unavailable: {exc}", type="server_error",
                                   code="service_unavailable")
    if isinstance(exc, GeneratorUnavailableError):
        return ChatCompletionError(503, f"language model unavailable: {exc}", type="server_error",
                                   code="service_unavailable")
    if isinstance(exc, HTTPException):
        kind, code = _HTTP_ERRORS.get(exc.status_code, ("invalid_request_error" if exc.status_code < 500
                                                        else "server_error", None))
        return ChatCompletionError(exc.status_code, str(exc.detail), type=kind, code=code,
                                   headers=dict(exc.headers or {}))
    raise exc


class OpenAIErrorRoute(APIRoute):
    """A route whose errors (dependencies included) are answered in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - translated, or re-raised by _openai_error
                err = _openai_error(exc)
                if err.status >= 500:
                    log.error("chat completion failed: %s", err.message)
                return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

        return route_handler


router = APIRouter(tags=["openai-compatible"], route_class=OpenAIErrorRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorBody, "description": d} for s, d in {
        400: "invalid request or unsupported parameter value", 401: "missing or invalid API key",
        403: "the key lacks scope `answer`", 404: "unknown model (profile)", 429: "rate limit of this key exceeded",
        503: "index unavailable"}.items()}
ERRORS[413] = {"model": ErrorResponse, "description": "request body too large (the API's `detail` shape)"}

AnswerKey = Annotated[Principal, Depends(require_scope("answer"))]


@router.get("/v1/models", response_model=ModelList, responses=ERRORS)
async def list_models(_: AnswerKey, container: ContainerDep) -> ModelList:
    """The answer profiles, as models (``citedesk-chat``, ``citedesk-voice`` and any configured ones)."""
    return container.chat_completions.models()


@router.get("/v1/models/{model}", response_model=ModelCard, responses=ERRORS)
async def get_model(model: str, _: AnswerKey, container: ContainerDep) -> ModelCard:
    """One profile (404 ``model_not_found`` when unknown)."""
    container.chat_completions.profile(model)
    return next(m for m in container.chat_completions.models().data if m.id == model)


@router.post("/v1/chat/completions", response_model=ChatCompletion, responses={
    200: {"content": {"text/event-stream": {"schema": ChatCompletionChunk.model_json_schema(
              ref_template="#/components/schemas/{model}")}},
          "description": "a chat.completion, or with `stream: true` chat.completion.chunk events then "
                         "`data: [DONE]`"},
    **ERRORS})
async def chat_completions(body: ChatCompletionRequest, caller: Caller, container: ContainerDep):
    """A grounded answer (or an escalation) in OpenAI's chat-completions format.

    ``model`` names a profile; the last user message is the question and earlier user/assistant messages the
    history. On escalation: a call of the transfer tool when ``tools`` declares it (``finish_reason:
    tool_calls``), else the profile's handoff sentence. Citations, confidence, decision and reason are in the
    extra top-level ``citedesk`` object (on the last chunk when streaming)."""
    responder = container.chat_completions
    if not body.stream:
        return await responder.complete(body, workspace=caller.workspace)
    chunks = responder.stream(body, workspace=caller.workspace)
    first = await anext(chunks)  # validation and retrieval happen here: their errors are plain 4xx/503

    async def events():
        try:
            yield {"data": _dump(first)}
            async for chunk in chunks:
                yield {"data": _dump(chunk)}
            yield {"data": "[DONE]"}
        finally:
            await chunks.aclose()

    return EventSourceResponse(events(), ping=15, sep="\n")


def _dump(chunk: ChatCompletionChunk) -> str:
    data = chunk.model_dump(mode="json", exclude_none=True)
    if chunk.citedesk is not None:
        data["citedesk"] = chunk.citedesk.model_dump(mode="json")
    data["choices"][0].setdefault("finish_reason", None)  # OpenAI sends it on every chunk
    return json.dumps(data)
