"""FastAPI application, built by :func:`create_app` (never at import): routers, error handlers, lifespan."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from citedesk.config.settings import Settings
from citedesk.core.errors import CitedeskError, GeneratorUnavailableError, IndexUnavailableError
from citedesk.serving.api.limits import BodySizeLimitMiddleware
from citedesk.serving.api.routes import answer as answer_routes
from citedesk.serving.api.routes import audit_pages
from citedesk.serving.api.routes import guidance as guidance_routes
from citedesk.serving.api.routes import chat_completions as chat_completions_routes
from citedesk.serving.api.routes import health as health_routes
from citedesk.serving.api.routes import metrics as metrics_routes
from citedesk.serving.api.routes import sync as sync_routes
from citedesk.serving.api.routes import voice as voice_routes
from citedesk.serving.api.routes.webhooks import router as webhooks_router
from citedesk.serving.channels.voice.state import VoiceStateError
from citedesk.serving.container import Container
from citedesk.serving.observability.logs import RequestMiddleware
from citedesk.serving.discovery import announce, server_url, withdraw
from citedesk.serving.sync_jobs import SyncBusyError

__all__ = ["create_app"]

log = logging.getLogger(__name__)


def create_app(settings: Settings, *, container: Container | None = None, warm_up: bool = True) -> FastAPI:
    """Build the API.

    Args:
        settings: validated settings (read once, here).
        container: prebuilt components (tests share one across apps); built from settings when None.
        warm_up: load models at startup (otherwise on first request).

    Returns:
        The FastAPI app: ``POST /v1/answer``, ``POST /v1/answer/stream`` (SSE), ``POST /v1/chat/completions``
        and ``GET /v1/models`` (OpenAI-compatible), ``POST /v1/sync`` (NDJSON progress), ``GET /healthz``,
        ``GET /metrics`` (unless ``metrics.enabled`` is false), OpenAPI at ``/docs`` and ``/openapi.json``. While
        it runs, ``<data_dir>/server.json`` tells ``citedesk sync`` / ``ask`` on the same data where to hand work.
    """
    container = container or Container(settings)

    async def scheduled_syncs(interval: float) -> None:
        """``sync.interval``: a sync at startup, then one every ``interval`` s (skipped while one runs)."""
        while True:
            try:
                connector = (container.folder_connector() if settings.sync.source == "folder"
                             else container.intercom_connector())
                job = container.sync_runner.start(connector)
                await anyio.to_thread.run_sync(lambda: [*job.follow()], abandon_on_cancel=True)
                log.info("scheduled sync %s: %s", job.job_id, job.error or job.report)
            except SyncBusyError as exc:
                log.info("scheduled sync skipped: %s", exc)
            except CitedeskError as exc:
                log.error("scheduled sync not started: %s", exc)
            await anyio.sleep(interval)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if warm_up:
            await anyio.to_thread.run_sync(container.pipeline.warm_up)
            if container.unit_warmer is not None:
                container.unit_warmer.start()  # answer-unit vectors of every chunk, in the background
        if webhooks is not None:
            await webhooks.start()
        announce(settings.data_dir, server_url(settings.server.host, settings.server.port))
        schedule = (asyncio.create_task(scheduled_syncs(settings.sync.interval))
                    if settings.sync.interval > 0 else None)
        yield
        if schedule is not None:
            schedule.cancel()
        withdraw(settings.data_dir)
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
    app.state.metrics = container.metrics  # None when metrics.enabled is false
    app.add_middleware(RequestMiddleware, metrics=container.metrics)  # outermost: request id, timing, access log

    @app.exception_handler(IndexUnavailableError)
    async def _index_down(_: Request, exc: IndexUnavailableError):
        log.error("index unavailable: %s", exc)
        return JSONResponse(status_code=503, content={"detail": f"search index unavailable: {exc}"})

    @app.exception_handler(VoiceStateError)
    async def _bad_voice_state(_: Request, exc: VoiceStateError):
        # 409: the body is well-formed, but the state conflicts with what this server issued
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(GeneratorUnavailableError)
    async def _llm_down(_: Request, exc: GeneratorUnavailableError):
        return JSONResponse(status_code=503, content={"detail": f"language model unavailable: {exc}"})

    app.include_router(answer_routes.router)
    app.include_router(voice_routes.router)
    if settings.chat_completions.enabled:
        app.include_router(chat_completions_routes.router)  # errors in OpenAI's shape, whatever raised them
    app.include_router(health_routes.router)
    app.include_router(guidance_routes.router)
    if container.metrics is not None:
        app.include_router(metrics_routes.router)
    app.include_router(sync_routes.router)
    audit_pages.install(app)  # the audit JSON routes, the /audit page and the 401/403 handler
    return app
