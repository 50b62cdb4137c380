"""``/v1/webhooks/intercom``: the Intercom webhook receiver (FastAPI router).

``POST`` checks ``X-Hub-Signature`` on the raw body (401 on a mismatch, before any parsing), answers the
``ping`` topic, and hands every other notification to :meth:`citedesk.serving.channels.intercom.drafting.WebhookWorker.accept`
(a durable insert and an in-memory enqueue), so it answers 200 in milliseconds whatever the drafting
costs. ``HEAD`` answers 200 (Intercom checks the URL with it). The worker comes from
``app.state.intercom_webhooks``; without one (no ``intercom.client_secret``) the endpoint answers 503.
"""

from __future__ import annotations

import logging
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from citedesk.serving.channels.intercom.webhooks import (
    ADMIN_REPLY_TOPICS,
    ARTICLE_TOPICS,
    CONVERSATION_TOPICS,
    PING_TOPIC,
    SIGNATURE_HEADER,
    WebhookPayloadError,
    parse_notification,
    verify_signature,
)
from citedesk.serving.channels.intercom.drafting import WebhookStoreError, WebhookWorker

__all__ = ["WebhookAck", "router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])


class WebhookAck(BaseModel):
    """What the receiver did: ``queued``, ``duplicate`` (id already received), ``ignored`` (topic not
    handled) or ``pong``."""

    status: str
    id: str | None = None
    topic: str | None = None


def _worker(request: Request) -> WebhookWorker | None:
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
    worker = _worker(request)
    secret: str | None = getattr(request.app.state, "intercom_client_secret", None)
    if worker is None or not secret:
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
    if notification.topic not in CONVERSATION_TOPICS | ADMIN_REPLY_TOPICS | ARTICLE_TOPICS:
        return JSONResponse(WebhookAck(status="ignored", id=notification.id, topic=notification.topic).model_dump())
    try:
        status = await worker.accept(notification, raw)
    except WebhookStoreError as exc:
        log.error("webhook %s not recorded: %s", notification.id, exc)
        return JSONResponse({"detail": f"webhook store unavailable: {exc}"}, status_code=503)
    return JSONResponse(WebhookAck(status=status, id=notification.id, topic=notification.topic).model_dump())
