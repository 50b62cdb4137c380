"""FastAPI application, built by :func:`create_app` (never at import)."""

from __future__ import annotations

import json
import logging
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from sse_starlette.sse import EventSourceResponse

from config.settings import Settings
from core.errors import GeneratorUnavailableError, IndexUnavailableError
from core.types import Channel
from serving.auth import Principal, require_scope
from serving.container import Container
from serving.limits import BodySizeLimitMiddleware
from serving.pipeline import AnswerPipeline
from serving.voice import VoiceStateError, serve_websocket
from serving.schemas import AnswerRequest, AnswerResponse, ErrorResponse, HealthResponse
from serving.webhooks_api import router as webhooks_router

log = logging.getLogger(__name__)

def get_pipeline(request: Request) -> AnswerPipeline:
    """The app's answer pipeline (dependency)."""
    return request.app.state.container.pipeline


Pipeline = Annotated[AnswerPipeline, Depends(get_pipeline)]


def answer_principal(request: Request, principal: Annotated[Principal, Depends(require_scope("answer"))]
                     ) -> Principal:
    """The caller (401/403 when auth is on and the key lacks ``answer``), rate-limited per key (429)."""
    limiter = request.app.state.container.rate_limiter
    if limiter is not None:
        client = request.client.host if request.client else "unknown"
        limiter.check(principal.key_id or f"anonymous:{client}")
    return principal


Caller = Annotated[Principal, Depends(answer_principal)]
WsCaller = Annotated[Principal, Depends(require_scope("answer"))]

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


def create_app(settings: Settings, *, container: Container | None = None, warm_up: bool = True) -> FastAPI:
    """Build the API.

    Args:
        settings: validated settings (read once, here).
        container: prebuilt components (tests share one across apps); built from settings when None.
        warm_up: load models at startup (otherwise on first request).

    Returns:
        The FastAPI app: ``POST /v1/answer``, ``POST /v1/answer/stream`` (SSE), ``GET /healthz``,
        OpenAPI at ``/docs`` and ``/openapi.json``.
    """
    container = container or Container(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm_up:
            await anyio.to_thread.run_sync(container.pipeline.warm_up)
        if webhooks is not None:
            await webhooks.start()
        yield
        if webhooks is not None:
            await webhooks.stop()
        close = getattr(container.generator, "aclose", None)
        if close is not None:
            await close()

    app = FastAPI(title="citedesk", version="0.1.0", lifespan=lifespan,
                  description="Grounded, cited answers from your help center — or an escalation to a human.")
    app.state.container = container
    webhooks = container.intercom_webhooks  # None unless intercom.client_secret is set
    app.state.intercom_webhooks = webhooks
    secret = settings.intercom.client_secret
    app.state.intercom_client_secret = secret.get_secret_value() if secret else None
    app.include_router(webhooks_router)  # POST/HEAD /v1/webhooks/intercom (HMAC-signed, no API key)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.server.max_body_bytes)

    @app.exception_handler(IndexUnavailableError)
    async def _index_down(_: Request, exc: IndexUnavailableError):
        log.error("index unavailable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": f"search index unavailable: {exc}"})

    @app.exception_handler(VoiceStateError)
    async def _bad_voice_state(_: Request, exc: VoiceStateError):
        # 409: the body is well-formed, but the state conflicts with what this server issued
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.websocket("/v1/voice/ws")
    async def voice_ws(websocket: WebSocket, caller: WsCaller) -> None:
        """Voice over a WebSocket (telephony bridges): see :func:`serving.voice.serve_websocket`.

        Needs an ``answer`` key when auth is on (refused: close 1008); answers search its workspace."""
        await serve_websocket(websocket, container.voice, workspace=caller.workspace)

    @app.exception_handler(GeneratorUnavailableError)
    async def _llm_down(_: Request, exc: GeneratorUnavailableError):
        return JSONResponse(status_code=503, content={"detail": f"language model unavailable: {exc}"})

    from serving import audit_api  # the audit routes, the /audit page and the 401/403 handler

    audit_api.install(app)

    @app.post("/v1/answer", response_model=AnswerResponse, responses=ERRORS, tags=["answer"])
    async def answer(body: AnswerRequest, pipeline: Pipeline, caller: Caller) -> AnswerResponse:
        """Answer a question with citations, or escalate with a reason and a handoff summary.

        Searches only the caller's workspace (the API key's tenant)."""
        if body.channel == Channel.VOICE:
            return await container.voice.answer(body, workspace=caller.workspace)
        return await pipeline.answer(body, workspace=caller.workspace)

    @app.post("/v1/answer/stream", tags=["answer"],
              response_class=EventSourceResponse,
              responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
                               "description": "events: retrieval, sentence*, citations, decision, done"},
                         **ERRORS})
    async def answer_stream(body: AnswerRequest, pipeline: Pipeline, caller: Caller):
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

    @app.get("/healthz", response_model=HealthResponse, tags=["ops"],
             responses={503: {"model": HealthResponse, "description": "index unreachable"}})
    async def healthz(request: Request) -> JSONResponse:
        """200 when the index is reachable, 503 otherwise (body says which)."""
        c: Container = request.app.state.container
        try:
            reachable = await anyio.to_thread.run_sync(c.index.ping)
            points = 0
            if reachable:
                points = await anyio.to_thread.run_sync(lambda: c.index.count(settings.workspace, exact=False))
            body = HealthResponse(status="ok", index=c.index.location, index_reachable=True,
                                  generator=c.generator.name, points=points)
            return JSONResponse(body.model_dump())
        except IndexUnavailableError as exc:
            body = HealthResponse(status=f"degraded: {exc}", index=c.index.location, index_reachable=False,
                                  generator=c.generator.name)
            return JSONResponse(body.model_dump(), status_code=503)

    return app
