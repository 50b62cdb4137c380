"""Client of ``POST /v1/sync``: hands a sync to a running citedesk server and follows its NDJSON progress."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from citedesk.core.errors import CitedeskError

__all__ = ["RemoteSyncError", "remote_sync"]


class RemoteSyncError(CitedeskError):
    """The server refused the sync (401/403 key, 409 one already running or nothing to sync, 403/404 bad folder), could not be reached,
    or the job failed there. ``status`` is the HTTP status (None: no answer, or the job's own failure)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def remote_sync(url: str, *, source: str = "folder", path: str | None = None, api_key: str | None = None,
                on_event: Callable[[dict], None] | None = None, connect_timeout: float = 10.0) -> dict:
    """Run a sync in the server at ``url`` and wait for it.

    Args:
        url: citedesk API root, e.g. ``http://127.0.0.1:8000``.
        source: ``folder`` or ``intercom``.
        path: folder on the server's machine (absolute is safest); None: the server's ``folder.path``.
        api_key: bearer key with the ``sync`` scope (needed when the server has auth on).
        on_event: called with every progress event (``started``, ``total``, ``advance``, ``done``, ``error``).
        connect_timeout: seconds to connect; the stream itself has no read timeout (a sync takes minutes).

    Returns:
        The sync report's summary dict (as ``SyncReport.summary()``).

    Raises:
        RemoteSyncError: refused, unreachable, cut off before the end, or failed in the server.
    """
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    body = {"source": source, **({"path": path} if path else {})}
    timeout = httpx.Timeout(connect_timeout, read=None)
    base = url.rstrip("/")
    try:
        with httpx.stream("POST", f"{base}/v1/sync", json=body, headers=headers, timeout=timeout) as r:
            if r.status_code != 200:
                r.read()
                try:
                    detail = r.json().get("detail", r.text)
                except ValueError:
                    detail = r.text
                raise RemoteSyncError(f"the server at {base} refused the sync (HTTP {r.status_code}): {detail}",
                                      r.status_code)
            for line in r.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                if on_event is not None:
                    on_event(event)
                if event.get("event") == "done":
                    return event["report"]
                if event.get("event") == "error":
                    raise RemoteSyncError(f"the sync failed in the server at {base}: {event.get('detail')}")
    except httpx.HTTPError as exc:
        raise RemoteSyncError(f"citedesk server at {base} unreachable or the stream broke: "
                              f"{type(exc).__name__}: {exc}") from exc
    raise RemoteSyncError(f"the server at {base} closed the progress stream before the sync ended "
                          "(GET /v1/sync shows how it went)")
