"""The standalone webhook receiver (``citedesk webhooks``): Intercom webhooks only, drafting through a remote API."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import FastAPI

from citedesk.config.settings import Settings
from citedesk.serving.api.limits import BodySizeLimitMiddleware
from citedesk.serving.api.routes import metrics as metrics_routes
from citedesk.serving.api.routes.webhooks import router
from citedesk.serving.container import Container
from citedesk.serving.observability.logs import RequestMiddleware

__all__ = ["create_webhooks_app"]


def create_webhooks_app(settings: Settings, *, answer_url: str | None = None, api_key: str | None = None) -> FastAPI:
    """The standalone receiver: webhooks only, drafting through a remote citedesk API.

    Article topics are recorded and skipped (the index lives with the remote API; run ``citedesk sync``
    or point Intercom's article topics at the full app there).

    Args:
        settings: validated settings (read here, a composition root).
        answer_url: citedesk API root; default ``intercom.drafts.answer_api_url``.
        api_key: bearer key for the remote API when it has ``auth.enabled``.

    Returns:
        A FastAPI app serving ``POST/HEAD /v1/webhooks/intercom``, ``GET /healthz`` and ``GET /metrics``.

    Raises:
        ConfigError: no answer API URL, no ``intercom.client_secret`` / ``token`` / ``admin_id``.
    """
    container = Container(settings)
    worker, answerer, url = container.remote_webhooks(answer_url, api_key)
    secret = settings.intercom.client_secret

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await worker.start()
        yield
        await worker.stop()
        await answerer.aclose()

    app = FastAPI(title="citedesk webhooks", version="0.1.0", lifespan=lifespan,
                  description=f"Intercom webhook receiver drafting through {url}")
    app.state.intercom_webhooks = worker
    app.state.intercom_client_secret = secret.get_secret_value() if secret else None
    app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.server.max_body_bytes)
    app.state.metrics = container.metrics
    app.add_middleware(RequestMiddleware, metrics=container.metrics)
    if container.metrics is not None:
        app.include_router(metrics_routes.router)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        """200 with the number of notifications not yet processed."""
        unfinished = await anyio.to_thread.run_sync(worker.unfinished)
        return {"status": "ok", "answer_api": url, "unfinished": unfinished}

    return app
