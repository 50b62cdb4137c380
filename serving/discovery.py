"""Finding a running ``citedesk serve`` for a data directory, so the CLI hands it work instead of opening the
embedded index (which local mode locks to one process).

The server writes ``<data_dir>/server.json`` (``{"url", "pid", "started_at"}``) when it starts and removes it
when it stops; :func:`find_server` trusts the file only while that process is alive and the URL answers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

__all__ = ["SERVER_FILE", "announce", "find_server", "server_url", "withdraw"]

SERVER_FILE = "server.json"


def server_url(host: str, port: int) -> str:
    """The URL a local client uses for a server bound to ``host:port`` (a wildcard bind is reached on loopback)."""
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def announce(data_dir: Path, url: str) -> Path:
    """Record that this process serves ``data_dir`` at ``url``; returns the file written."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SERVER_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid(), "started_at": time.time()}))
    os.replace(tmp, path)
    return path


def withdraw(data_dir: Path) -> None:
    """Remove the record if this process wrote it."""
    path = data_dir / SERVER_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_server(data_dir: Path, *, timeout: float = 2.0) -> str | None:
    """URL of a live ``citedesk serve`` on ``data_dir``, or None.

    Live: the recorded process exists and ``GET <url>/healthz`` gets an HTTP answer (200, or 503 when its index is
    down) within ``timeout`` seconds.
    """
    try:
        record = json.loads((data_dir / SERVER_FILE).read_text())
        url, pid = str(record["url"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid):
        return None
    import httpx

    try:
        status = httpx.get(f"{url}/healthz", timeout=timeout).status_code
    except httpx.HTTPError:
        return None
    return url if status in (200, 503) else None
