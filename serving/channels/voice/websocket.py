"""The voice channel over a WebSocket (telephony bridges): many turns per call, barge-in, state on the connection."""

from __future__ import annotations

import asyncio
import json

from citedesk.serving.answer.pipeline import Event
from citedesk.serving.answer.schemas import AnswerRequest, VoiceState
from citedesk.serving.channels.voice.responder import VoiceResponder
from citedesk.serving.channels.voice.state import VoiceStateError

__all__ = ["serve_websocket", "wire"]


def wire(event: Event) -> dict:
    """An event as a JSON-ready dict (the ``done`` response serialised)."""
    data = event.data
    if event.type == "done":
        data = {"response": data["response"].model_dump(mode="json")}
    return data


async def serve_websocket(websocket, responder: VoiceResponder, *, workspace: str | None = None) -> None:
    """Serve one call over a WebSocket: many turns, barge-in, state kept on the connection.

    Client → server (JSON text frames):
        ``{"type": "ask", "question": "...", "conversation_id"?, "history"?, "locale"?, "voice_state"?}``
        (channel is voice; without ``voice_state`` the state of this connection's last answer is used);
        ``{"type": "cancel"}`` stops the answer being spoken (the caller barged in). A new ``ask`` while
        an answer runs cancels that answer first.
    Server → client: ``{"type": <event>, ...event data}`` for ``filler``, ``retrieval``, ``sentence``,
        ``citations``, ``decision``, ``done``; ``{"type": "cancelled"}``; ``{"type": "error", "status":
        409 | 422 | 503, "detail": "..."}`` (the connection stays open; 409: altered voice_state).

    A closed connection cancels the running answer (retrieval abandoned, LLM request closed).
    ``workspace``: the tenant searched for this connection (default: the pipeline's).
    """
    from fastapi import WebSocketDisconnect
    from pydantic import ValidationError

    from citedesk.core.errors import IndexUnavailableError

    await websocket.accept()
    running: asyncio.Task | None = None
    last_state: list[VoiceState | None] = [None]

    async def run(request: AnswerRequest) -> None:
        events = responder.stream(request, workspace=workspace)
        try:
            async for event in events:
                await websocket.send_json({"type": event.type, **wire(event)})
                if event.type == "done":
                    voice = event.data["response"].voice
                    last_state[0] = voice.state if voice else None
        except VoiceStateError as exc:
            await websocket.send_json({"type": "error", "status": 409, "detail": str(exc)})
        except IndexUnavailableError as exc:
            await websocket.send_json({"type": "error", "status": 503, "detail": f"search index unavailable: {exc}"})
        finally:
            await events.aclose()

    async def stop() -> bool:
        if running is None or running.done():
            return False
        running.cancel()
        await asyncio.wait({running})
        return True

    try:
        while True:
            raw = await websocket.receive_text()
            try:
                msg = json.loads(raw)
                if not isinstance(msg, dict):
                    raise TypeError("a message is a JSON object")
                kind = msg.pop("type", None)
                if kind == "cancel":
                    if await stop():
                        await websocket.send_json({"type": "cancelled"})
                    continue
                if kind != "ask":
                    raise ValueError('"type" must be "ask" or "cancel"')
                msg["channel"] = "voice"
                if "voice_state" not in msg and last_state[0] is not None:
                    msg["voice_state"] = last_state[0].model_dump(mode="json")
                request = AnswerRequest.model_validate(msg)
            except (ValueError, TypeError, ValidationError) as exc:  # JSONDecodeError is a ValueError
                await websocket.send_json({"type": "error", "status": 422, "detail": str(exc)})
                continue
            if await stop():
                await websocket.send_json({"type": "cancelled"})
            running = asyncio.create_task(run(request), name="voice-ws-answer")
    except WebSocketDisconnect:
        pass
    finally:
        await stop()
