"""``POST /v1/answer`` and ``POST /v1/answer/stream`` (server-sent events): a grounded answer or an escalation."""

from __future__ import annotations

import json

from fastapi import APIRouter
from sse_starlette.sse import EventSourceResponse

from citedesk.core.types import Channel
from citedesk.serving.answer.schemas import AnswerRequest, AnswerResponse, ErrorResponse
from citedesk.serving.api.deps import Caller, ContainerDep, Pipeline

__all__ = ["ERRORS", "SSE_EVENT_SCHEMA", "router"]

router = APIRouter(tags=["answer"])

SSE_EVENT_SCHEMA = {
    "type": "object", "description": "one server-sent event; `data` is JSON text",
    "properties": {"event": {"type": "string", "enum": ["filler", "retrieval", "sentence", "citations",
                                                        "decision", "done"]},
                   "data": {"type": "string"}, "id": {"type": "string"}, "retry": {"type": "integer"}},
    "required": ["data"],
}

ERRORS = {409: {"model": ErrorResponse, "description": "voice_state altered or not issued here"},
          413: {"model": ErrorResponse, "description": "request body too large"},
          429: {"model": ErrorResponse, "description": "rate limit of this API key exceeded"},
          503: {"model": ErrorResponse, "description": "index or model unavailable"}}


@router.post("/v1/answer", response_model=AnswerResponse, responses=ERRORS)
async def answer(body: AnswerRequest, pipeline: Pipeline, caller: Caller, container: ContainerDep) -> AnswerResponse:
    """Answer a question with citations, or escalate with a reason and a handoff summary.

    Searches only the caller's workspace (the API key's tenant)."""
    if body.channel == Channel.VOICE:
        return await container.voice.answer(body, workspace=caller.workspace)
    return await pipeline.answer(body, workspace=caller.workspace)


@router.post("/v1/answer/stream", response_class=EventSourceResponse,
             responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
                              "description": "events: retrieval, sentence*, citations, decision, done"},
                        **ERRORS})
async def answer_stream(body: AnswerRequest, pipeline: Pipeline, caller: Caller, container: ContainerDep):
    """Server-sent events. ``sentence`` events are provisional until ``decision``: discard them on
    ``escalate``. ``done`` carries the full AnswerResponse. Retrieval errors arrive before the stream
    starts (503)."""
    events = (container.voice.stream(body, workspace=caller.workspace) if body.channel == Channel.VOICE
              else pipeline.stream(body, workspace=caller.workspace))
    first = await anext(events)  # retrieval runs here, so an index failure is a plain 503

    async def gen():
        try:
            for event in [first]:
                yield {"event": event.type, "data": json.dumps(event.data)}
            async for event in events:
                data = event.data
                if event.type == "done":
                    data = {"response": data["response"].model_dump(mode="json")}
                yield {"event": event.type, "data": json.dumps(data)}
        finally:
            await events.aclose()

    return EventSourceResponse(gen(), ping=15)
