"""Wire models of the OpenAI-compatible endpoint: chat-completion requests, responses, chunks, models, errors.

Only the fields citedesk reads or writes are declared; every other request field is accepted and ignored
(voice platforms add their own, e.g. Vapi's ``call``), except the few that would change the response's shape,
which are rejected with 400 as OpenAI does for values it cannot serve (see :class:`ChatCompletionRequest`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from citedesk.core.types import Citation

__all__ = ["ChatCompletion", "ChatCompletionChunk", "ChatCompletionError", "ChatCompletionRequest", "ChatMessage",
           "CitedeskExtension", "ErrorBody", "ModelCard", "ModelList", "ToolCall"]


class ChatCompletionError(Exception):
    """An error answered in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``.

    Args:
        status: HTTP status (400 invalid request, 401 auth, 403 scope, 404 unknown model, 429, 503).
        message: what went wrong and what to do, for people.
        type: OpenAI's error type (``invalid_request_error``, ``authentication_error``, ``permission_error``,
            ``rate_limit_error``, ``server_error``).
        code: machine-readable code (``model_not_found``, ``invalid_api_key``, ``unsupported_parameter``…).
        param: the request field at fault, if any.
        headers: extra response headers (``Retry-After``, ``WWW-Authenticate``).
    """

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}

    def body(self) -> dict:
        """The JSON error body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class ErrorDetail(BaseModel):
    """OpenAI's error object."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """``{"error": {...}}`` (every 4xx/5xx of the OpenAI-compatible routes)."""

    error: ErrorDetail


class ContentPart(BaseModel):
    """One part of a multi-part message; only ``{"type": "text", "text": ...}`` carries text."""

    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    """One message. ``system``/``developer`` messages are ignored (answers come only from the articles);
    ``tool``/``function`` results and assistant ``tool_calls`` are read only to recognise a transfer."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None


class FunctionDef(BaseModel):
    """A declared function (its ``parameters`` schema is not read)."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=64)


class ToolDef(BaseModel):
    """A declared tool; only ``type: function`` tools can receive citedesk's transfer call."""

    model_config = ConfigDict(extra="allow")

    type: str = "function"
    function: FunctionDef | None = None


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions`` body.

    Read: ``model`` (a profile, see ``GET /v1/models``), ``messages``, ``stream``, ``tools``, ``tool_choice``,
    ``metadata.conversation_id`` (audit). Rejected with 400 (``unsupported_parameter``): ``n`` > 1,
    ``logprobs``/``top_logprobs``, a ``response_format`` other than text, ``audio`` or an ``audio`` modality, and
    a ``tool_choice`` naming an undeclared function. Everything else (``temperature``, ``top_p``, ``max_tokens``,
    ``max_completion_tokens``, ``stop``, ``seed``, penalties, ``logit_bias``, ``user``, ``store``,
    ``parallel_tool_calls``, ``stream_options`` — no ``usage`` is reported —, ``functions``, vendor fields) is
    accepted and ignored: the answer is the checked text of the articles, never re-sampled or truncated.
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    stream: bool = False
    tools: list[ToolDef] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None


class FunctionCall(BaseModel):
    """The called function: its name and JSON-encoded arguments."""

    name: str
    arguments: str = Field(description='JSON text: {"reason": "...", "handoff_summary": "..."}')


class ToolCall(BaseModel):
    """A tool call (``type: function``)."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChunkToolCall(ToolCall):
    """A tool call inside a streamed delta (with its position)."""

    index: int = 0


class AssistantMessage(BaseModel):
    """The answer: ``content`` (text), or ``tool_calls`` (the transfer) with ``content`` null."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    refusal: str | None = None


class CitedeskExtension(BaseModel):
    """The extra top-level ``citedesk`` object (OpenAI clients ignore it): what decided and the sources."""

    decision: str = Field(description="answer | escalate")
    reason: str = Field(description="grounded, or why it escalated (see /v1/answer)")
    confidence: float
    confidence_kind: str
    citations: list[Citation] = Field(default_factory=list)
    handoff_summary: str | None = None
    answer: str = Field("", description="the written answer with [n] markers (the message content may be "
                                        "plain or speakable text, depending on the profile)")
    short_answer: str | None = Field(None, description="the asked value or names, verbatim from the answer, or "
                                                       "Yes/No (see /v1/answer); null when the sentences answer")
    profile: str
    latency_ms: dict[str, float] = Field(default_factory=dict)


class Choice(BaseModel):
    """The one choice of a blocking completion."""

    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "tool_calls"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    """A blocking chat completion (``object: chat.completion``)."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(description="Unix seconds")
    model: str
    choices: list[Choice]
    citedesk: CitedeskExtension


class Delta(BaseModel):
    """What a chunk adds to the message."""

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(BaseModel):
    """The one choice of a chunk."""

    index: int = 0
    delta: Delta
    finish_reason: Literal["stop", "tool_calls"] | None = None


class ChatCompletionChunk(BaseModel):
    """One ``data:`` event of a streamed completion (``object: chat.completion.chunk``); the last one has a
    ``finish_reason`` and the ``citedesk`` object, and ``data: [DONE]`` follows it."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    citedesk: CitedeskExtension | None = None


class ModelCard(BaseModel):
    """A profile, listed as a model."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "citedesk"
    description: str = ""


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
