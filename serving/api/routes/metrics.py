"""``GET /metrics``: Prometheus text exposition of this process (see ``serving/observability/metrics.py``)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response

__all__ = ["router"]

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format"}})
async def metrics(request: Request) -> Response:
    """Request latency per route, answers by channel / decision / reason, confidence, LLM time to first token,
    retrieval latency, sync runs and articles, webhook queue depth and retries."""
    body, content_type = await anyio.to_thread.run_sync(request.app.state.metrics.render)
    return Response(body, media_type=content_type)
