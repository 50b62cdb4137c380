"""Request ids and structured logs: one JSON line per HTTP request, the same id on the audit record.

:class:`RequestMiddleware` (pure ASGI, so streams are timed to their last byte) takes ``X-Request-ID`` from the
request when it is a sane token, else makes one, echoes it on the response, keeps it in a context variable for the
request's duration (:func:`current_request_id`: the audit log stores it; worker threads started with anyio inherit
it), feeds the request metrics and logs one ``citedesk.access`` record. :class:`JsonFormatter` turns every log
record into one JSON line, with the request id when there is one.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["JsonFormatter", "RequestMiddleware", "configure_json_logging", "current_request_id"]

_REQUEST_ID: ContextVar[str | None] = ContextVar("citedesk_request_id", default=None)
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
access_log = logging.getLogger("citedesk.access")
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def current_request_id() -> str | None:
    """The id of the HTTP request being served in this context, or ``None`` outside one."""
    return _REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (epoch s), ``level``, ``logger``, ``message``, ``request_id`` when in a
    request, the record's ``extra`` fields, and ``exc`` with the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        rid = getattr(record, "request_id", None) or current_request_id()
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure_json_logging(level: int = logging.INFO) -> None:
    """Send every log record to stderr as one JSON line (replaces the root logger's handlers)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    access_log.setLevel(logging.INFO)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"


class RequestMiddleware:
    """Request id, request metrics and the one-line access log (see module docstring).

    Args:
        app: the wrapped ASGI app.
        metrics: a :class:`~citedesk.serving.observability.metrics.Metrics`, or ``None`` (no metrics).
    """

    def __init__(self, app: ASGIApp, metrics=None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = _REQUEST_ID.set(rid)
        status = 500
        t0 = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - t0
            route = _route_of(scope)
            if self.metrics is not None:
                self.metrics.observe_request(scope["method"], route, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_log.info("request", extra={
                    "request_id": rid, "method": scope["method"], "route": route, "path": scope["path"],
                    "status": status, "duration_ms": round(seconds * 1000, 2),
                    "client": client[0] if client else None})
            _REQUEST_ID.reset(token)
