"""OpenAI-compatible chat completions over the answer pipeline (voice platforms, agent frameworks).

:class:`ChatCompletionsResponder` turns a chat-completions request into an
:class:`~citedesk.serving.answer.schemas.AnswerRequest` (``messages`` → history + the last user message as
the question; ``model`` → a profile: channel, threshold, text style) and the pipeline's events into
``chat.completion.chunk`` objects — the same retrieval, confidence, claim checks and audit record as
``/v1/answer``. The blocking completion is the streamed one collected, so both say the same.

Escalation becomes something the client can act on: a call of the transfer tool (``finish_reason:
"tool_calls"``, arguments ``{"reason", "handoff_summary"}``) when the request declares it, else the profile's
handoff sentence. Citations, confidence, decision and reason travel in an extra top-level ``citedesk`` object
on the completion and on the last chunk.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pydantic import ValidationError

from citedesk.config.settings import ChatCompletionsSettings, ChatProfile
from citedesk.core.text import strip_markers
from citedesk.core.types import Decision, StreamPolicy, TextStyle, Turn
from citedesk.retrieval.confidence import CONFIDENCE_KIND
from citedesk.serving.answer.pipeline import AnswerPipeline
from citedesk.serving.answer.schemas import AnswerRequest, AnswerResponse
from citedesk.serving.channels.chat_completions.schemas import (
    AssistantMessage, ChatCompletion, ChatCompletionChunk, ChatCompletionError, ChatCompletionRequest, ChatMessage,
    Choice, ChunkChoice, ChunkToolCall, CitedeskExtension, Delta, FunctionCall, ModelCard, ModelList, ToolCall)
from citedesk.serving.channels.voice.speech import speakable

__all__ = ["ChatCompletionsResponder", "Conversation", "TRANSFERRED"]

TRANSFERRED = "transferred"
"""``citedesk.reason`` of the reply to a tool result (the client is already handing over; nothing is answered)."""

_HISTORY_TURNS = 50  # AnswerRequest.history's limit: older turns are dropped
_TURN_CHARS = 8000   # Turn.text's limit: longer turns are cut


@dataclass(frozen=True)
class Conversation:
    """A request, read: its profile, the question to answer (None after a tool result) and whether the
    client declared the transfer tool (escalations then become a call of it)."""

    profile_name: str
    profile: ChatProfile
    request: AnswerRequest | None
    transfer: bool


def _text(message: ChatMessage, *, strict: bool, index: int) -> str:
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if part.type == "text" and part.text is not None:
            parts.append(part.text)
        elif strict:
            raise ChatCompletionError(400, f"messages[{index}]: content part of type '{part.type}' is not "
                                           "supported; send text", code="unsupported_content",
                                      param=f"messages[{index}].content")
    return "\n".join(parts)


class ChatCompletionsResponder:
    """``POST /v1/chat/completions`` and ``GET /v1/models`` behind the routes.

    Args:
        pipeline: the shared answer pipeline.
        settings: ``settings.chat_completions`` (profiles, transfer tool name).
    """

    def __init__(self, pipeline: AnswerPipeline, settings: ChatCompletionsSettings | None = None) -> None:
        self.pipeline = pipeline
        self.settings = settings or ChatCompletionsSettings()

    # ------------------------------------------------------------------------------------------ models

    def models(self) -> ModelList:
        """The profiles, as OpenAI models."""
        return ModelList(data=[ModelCard(id=name, description=p.description)
                               for name, p in self.settings.profiles.items()])

    def profile(self, name: str) -> ChatProfile:
        """The profile called ``name``.

        Raises:
            ChatCompletionError: 404 ``model_not_found``.
        """
        profile = self.settings.profiles.get(name)
        if profile is None:
            raise ChatCompletionError(
                404, f"The model `{name}` does not exist; use one of: {', '.join(self.settings.profiles)} "
                     "(GET /v1/models)", code="model_not_found", param="model")
        return profile

    # --------------------------------------------------------------------------------------- requests

    def read(self, body: ChatCompletionRequest) -> Conversation:
        """Check a request and turn it into an answer request.

        Raises:
            ChatCompletionError: 404 for an unknown model; 400 for an unsupported parameter value, a
                non-text user message, no user message, a conversation ending with an assistant message or a
                question over the length limit.
        """
        profile = self.profile(body.model)
        self._check_parameters(body)
        declared = {t.function.name for t in body.tools or () if t.type == "function" and t.function}
        choice = body.tool_choice
        if isinstance(choice, dict):
            function = choice.get("function")
            forced = function.get("name") if isinstance(function, dict) else None
            if forced not in declared:
                raise ChatCompletionError(400, f"tool_choice names function '{forced}', which is not among tools",
                                          param="tool_choice")
        transfer = self.settings.transfer_tool in declared and choice != "none"
        convo = [(i, m) for i, m in enumerate(body.messages) if m.role not in ("system", "developer")]
        if not convo or not any(m.role == "user" for _, m in convo):
            raise ChatCompletionError(400, "messages contain no user message: nothing to answer", param="messages")
        last_index, last = convo[-1]
        if last.role in ("tool", "function"):  # the client ran the transfer (or another tool): nothing to answer
            return Conversation(body.model, profile, None, transfer)
        if last.role != "user":
            raise ChatCompletionError(400, "the last message must be the user's (or a tool result)",
                                      param=f"messages[{last_index}]")
        question = _text(last, strict=True, index=last_index).strip()
        if not question:
            raise ChatCompletionError(400, "the last user message is empty", param=f"messages[{last_index}]")
        history = []
        for i, m in convo[:-1]:
            if m.role not in ("user", "assistant"):
                continue
            text = _text(m, strict=False, index=i).strip()
            if text:
                history.append(Turn(role=m.role, text=text[:_TURN_CHARS]))
        conversation_id = (body.metadata or {}).get("conversation_id")
        try:
            request = AnswerRequest(question=question, history=history[-_HISTORY_TURNS:], channel=profile.channel,
                                    conversation_id=str(conversation_id)[:200] if conversation_id else None)
        except ValidationError as exc:
            err = exc.errors()[0]
            raise ChatCompletionError(400, f"messages: {'.'.join(map(str, err['loc']))}: {err['msg']}",
                                      param="messages") from None
        return Conversation(body.model, profile, request, transfer)

    @staticmethod
    def _check_parameters(body: ChatCompletionRequest) -> None:
        def reject(param: str, why: str) -> None:
            raise ChatCompletionError(400, f"{param}: {why}", code="unsupported_parameter", param=param)

        if body.n not in (None, 1):
            reject("n", "citedesk returns one grounded answer per request (n must be 1)")
        if body.logprobs or body.top_logprobs:
            reject("logprobs", "not available: answers are checked text, not sampled tokens")
        if body.response_format and body.response_format.get("type", "text") != "text":
            reject("response_format", "only text answers are produced (use the `citedesk` object for structure)")
        if body.audio is not None or "audio" in (body.modalities or ()):
            reject("modalities", "only text output is produced (pair the endpoint with your own TTS)")

    # ------------------------------------------------------------------------------------- responding

    async def complete(self, body: ChatCompletionRequest, *, workspace: str | None = None) -> ChatCompletion:
        """The blocking completion: :meth:`stream` collected.

        Raises:
            ChatCompletionError: invalid request (see :meth:`read`).
            IndexUnavailableError: Qdrant unreachable.
        """
        content: list[str] = []
        calls: list[ToolCall] = []
        last: ChatCompletionChunk | None = None
        events = self.stream(body, workspace=workspace)
        try:
            async for chunk in events:
                delta = chunk.choices[0].delta
                if delta.content:
                    content.append(delta.content)
                calls += [ToolCall(id=c.id, function=c.function) for c in delta.tool_calls or ()]
                last = chunk
        finally:
            await events.aclose()
        assert last is not None and last.citedesk is not None
        finish = last.choices[0].finish_reason or "stop"
        message = AssistantMessage(content="".join(content) or None, tool_calls=calls or None)
        return ChatCompletion(id=last.id, created=last.created, model=last.model,
                              choices=[Choice(message=message, finish_reason=finish)], citedesk=last.citedesk)

    async def stream(self, body: ChatCompletionRequest, *,
                     workspace: str | None = None) -> AsyncIterator[ChatCompletionChunk]:
        """Yield the chunks: the role, the answer text, maybe a tool call, then the finish with ``citedesk``.

        The first chunk is yielded after retrieval, so a caller that awaits it gets a request or index error
        before it starts a response. With the profile's ``stream = "sentences"`` each sentence is sent once it
        passed its claim checks; when a later sentence fails, the stream goes on with the transfer call or the
        handoff sentence (``citedesk.decision`` is then ``escalate``). With ``"decision"`` the text is sent
        only after the whole answer passed.

        Raises:
            ChatCompletionError: invalid request (before the first chunk).
            IndexUnavailableError: Qdrant unreachable (before the first chunk).
        """
        convo = self.read(body)
        profile = convo.profile
        cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: Delta, finish: str | None = None, meta: CitedeskExtension | None = None):
            return ChatCompletionChunk(id=cid, created=created, model=convo.profile_name,
                                       choices=[ChunkChoice(delta=delta, finish_reason=finish)], citedesk=meta)

        if convo.request is None:
            yield chunk(Delta(role="assistant", content=""))
            yield chunk(Delta(content=profile.handoff_message))
            yield chunk(Delta(), "stop", CitedeskExtension(
                decision=Decision.ESCALATE.value, reason=TRANSFERRED, confidence=0.0,
                confidence_kind=CONFIDENCE_KIND, profile=convo.profile_name))
            return

        sent = False  # any answer text sent
        held: list[str] = []
        events = self.pipeline.stream(convo.request, workspace=workspace, threshold=profile.threshold)
        try:
            async for event in events:
                if event.type == "retrieval":
                    yield chunk(Delta(role="assistant", content=""))
                elif event.type == "sentence":
                    text = self.render(event.data["text"], profile.text)
                    if not text:
                        continue
                    if profile.stream == StreamPolicy.SENTENCES:
                        yield chunk(Delta(content=(" " if sent else "") + text))
                        sent = True
                    else:
                        held.append(text)
                elif event.type == "done":
                    response: AnswerResponse = event.data["response"]
                    meta = self.extension(response, convo.profile_name)
                    if response.decision == Decision.ANSWER:
                        if held:
                            yield chunk(Delta(content=(" " if sent else "") + " ".join(held)))
                        yield chunk(Delta(), "stop", meta)
                    elif convo.transfer:
                        args = json.dumps({"reason": response.reason.value,
                                           "handoff_summary": response.handoff_summary or ""})
                        call = ChunkToolCall(id=f"call_{uuid.uuid4().hex[:24]}",
                                             function=FunctionCall(name=self.settings.transfer_tool, arguments=args))
                        yield chunk(Delta(tool_calls=[call]))
                        yield chunk(Delta(), "tool_calls", meta)
                    else:
                        yield chunk(Delta(content=(" " if sent else "") + profile.handoff_message))
                        yield chunk(Delta(), "stop", meta)
        finally:
            await events.aclose()

    @staticmethod
    def render(sentence: str, style: TextStyle) -> str:
        """One checked sentence in the profile's text style (``""`` when nothing is left to say)."""
        if style == TextStyle.SPEAKABLE:
            return speakable(sentence)
        if style == TextStyle.PLAIN:
            return strip_markers(sentence)
        return sentence

    @staticmethod
    def extension(response: AnswerResponse, profile: str) -> CitedeskExtension:
        """The ``citedesk`` object of a finished answer."""
        return CitedeskExtension(decision=response.decision.value, reason=response.reason.value,
                                 confidence=response.confidence, confidence_kind=response.confidence_kind,
                                 citations=response.citations, handoff_summary=response.handoff_summary,
                                 answer=response.answer, short_answer=response.short_answer, profile=profile,
                                 latency_ms=response.latency_ms)
