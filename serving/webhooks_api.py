"""``/v1/webhooks/intercom``: the Intercom webhook receiver (FastAPI router).

``POST`` checks ``X-Hub-Signature`` on the raw body (401 on a mismatch, before any parsing), answers the
``ping`` topic, and hands every other notification to :meth:`serving.middleware.WebhookMiddleware.accept`
(a durable insert and an in-memory enqueue), so it answers 200 in milliseconds whatever the drafting
costs. ``HEAD`` answers 200 (Intercom checks the URL with it). The middleware comes from
``app.state.intercom_webhooks``; without one (no ``intercom.client_secret``) the endpoint answers 503.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from connectors.webhooks import (
    ARTICLE_TOPICS,
    CONVERSATION_TOPICS,
    PING_TOPIC,
    SIGNATURE_HEADER,
    WebhookPayloadError,
    parse_notification,
    verify_signature,
)
from core.errors import ConfigError
from serving.middleware import WebhookMiddleware, WebhookStoreError

__all__ = ["WebhookAck", "create_middleware_app", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])


class WebhookAck(BaseModel):
    """What the receiver did: ``queued``, ``duplicate`` (id already received), ``ignored`` (topic not
    handled) or ``pong``."""

    status: str
    id: str | None = None
    topic: str | None = None


def _middleware(request: Request) -> WebhookMiddleware | None:
    return getattr(request.app.state, "intercom_webhooks", None)


@router.head("/v1/webhooks/intercom", include_in_schema=False)
async def intercom_webhook_head() -> Response:
    """Reachability check Intercom performs when the webhook URL is saved."""
    return Response(status_code=200)


@router.post(
    "/v1/webhooks/intercom",
    response_model=WebhookAck,
    responses={401: {"description": "X-Hub-Signature missing or wrong"},
               400: {"description": "signed, but not a notification_event"},
               503: {"description": "webhooks not configured (intercom.client_secret), or the webhook "
                                    "store (database) unavailable"}},
)
async def intercom_webhook(request: Request) -> JSONResponse:
    """Receive an Intercom notification (signed with the app's client secret); the work is queued."""
    middleware = _middleware(request)
    secret: str | None = getattr(request.app.state, "intercom_client_secret", None)
    if middleware is None or not secret:
        return JSONResponse({"detail": "Intercom webhooks are not configured (set intercom.client_secret "
                                       "and intercom.admin_id)"}, status_code=503)
    raw = await request.body()
    if not verify_signature(raw, request.headers.get(SIGNATURE_HEADER), secret):
        log.warning("webhook rejected: bad %s from %s", SIGNATURE_HEADER,
                    request.client.host if request.client else "?")
        return JSONResponse({"detail": f"invalid {SIGNATURE_HEADER} signature"}, status_code=401)
    try:
        notification = parse_notification(raw)
    except WebhookPayloadError as exc:
        return JSONResponse({"detail": f"not an Intercom notification: {exc}"}, status_code=400)
    if notification.topic == PING_TOPIC:
        return JSONResponse(WebhookAck(status="pong", id=notification.id, topic=PING_TOPIC).model_dump())
    if notification.topic not in CONVERSATION_TOPICS | ARTICLE_TOPICS:
        return JSONResponse(WebhookAck(status="ignored", id=notification.id, topic=notification.topic).model_dump())
    try:
        status = await middleware.accept(notification, raw)
    except WebhookStoreError as exc:
        log.error("webhook %s not recorded: %s", notification.id, exc)
        return JSONResponse({"detail": f"webhook store unavailable: {exc}"}, status_code=503)
    return JSONResponse(WebhookAck(status=status, id=notification.id, topic=notification.topic).model_dump())


def create_middleware_app(settings: Any, *, answer_url: str | None = None, api_key: str | None = None) -> FastAPI:
    """The standalone receiver (``citedesk middleware``): webhooks only, drafting through a remote citedesk API.

    Article topics are recorded and skipped (the index lives with the remote API; run ``citedesk sync``
    or point Intercom's article topics at the full app there).

    Args:
        settings: validated :class:`config.settings.Settings` (read here, the composition root).
        answer_url: citedesk API root; default ``intercom.middleware.answer_api_url``.
        api_key: bearer key for the remote API when it has ``auth.enabled``.

    Returns:
        A FastAPI app serving ``POST/HEAD /v1/webhooks/intercom`` and ``GET /healthz``.

    Raises:
        ConfigError: no answer API URL, no ``intercom.client_secret`` / ``token`` / ``admin_id``.
    """
    from connectors.intercom import IntercomConnector
    from serving.db import Database, default_url
    from serving.limits import BodySizeLimitMiddleware
    from serving.middleware import MiddlewareConfig, RemoteAnswerClient

    i, m = settings.intercom, settings.intercom.middleware
    url = answer_url or m.answer_api_url
    if not url:
        raise ConfigError("no answer API: pass --answer-url or set intercom.middleware.answer_api_url")
    if i.client_secret is None or i.token is None:
        raise ConfigError("the middleware needs intercom.client_secret and intercom.token")
    workspace = i.workspace or settings.workspace
    token = i.token.get_secret_value()

    def connector() -> IntercomConnector:
        return IntercomConnector(token, base_url=i.base_url, workspace=workspace, per_page=i.per_page,
                                 max_retries=i.max_retries, timeout=i.timeout, locales=i.locales)

    answerer = RemoteAnswerClient(url, timeout=m.answer_timeout, api_key=api_key)
    middleware = WebhookMiddleware(Database(settings.database.url or default_url(settings.data_dir)), connector,
                                   answerer, MiddlewareConfig.from_settings(i), workspace=workspace)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await middleware.start()
        yield
        await middleware.stop()
        await answerer.aclose()

    app = FastAPI(title="citedesk middleware", version="0.1.0", lifespan=lifespan,
                  description=f"Intercom webhook receiver drafting through {url}")
    app.state.intercom_webhooks = middleware
    app.state.intercom_client_secret = i.client_secret.get_secret_value()
    app.include_router(router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.server.max_body_bytes)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        """200 with the number of notifications not yet processed."""
        unfinished = await anyio.to_thread.run_sync(middleware.unfinished)
        return {"status": "ok", "answer_api": url, "unfinished": unfinished}

    return app
