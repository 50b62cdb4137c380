"""``/v1/voice/ws``: the voice channel over a WebSocket (telephony bridges)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from citedesk.serving.api.deps import WsCaller
from citedesk.serving.channels.voice.websocket import serve_websocket

__all__ = ["router"]

router = APIRouter()


@router.websocket("/v1/voice/ws")
async def voice_ws(websocket: WebSocket, caller: WsCaller) -> None:
    """Voice over a WebSocket: see :func:`citedesk.serving.channels.voice.websocket.serve_websocket`.

    Needs an ``answer`` key when auth is on (refused: close 1008); answers search its workspace."""
    await serve_websocket(websocket, websocket.app.state.container.voice, workspace=caller.workspace)
