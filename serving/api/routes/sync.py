"""``POST /v1/sync`` (start a sync in the server, progress streamed as NDJSON) and ``GET /v1/sync`` (its state).

Needs an API key with the ``sync`` scope when auth is on. ``citedesk sync`` uses these routes when a server runs
on the same data (the embedded index is locked to the server's process) or when given ``--url``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from citedesk.core.errors import ConfigError
from citedesk.serving.answer.schemas import ErrorResponse
from citedesk.serving.api.auth import Principal, require_scope
from citedesk.serving.api.deps import ContainerDep
from citedesk.serving.sync_jobs import SyncBusyError

__all__ = ["SyncRequest", "allowed_folder", "router"]

router = APIRouter(tags=["sync"])

Syncer = Annotated[Principal, Depends(require_scope("sync"))]

NDJSON = "application/x-ndjson"


class SyncRequest(BaseModel):
    """What to sync. ``path`` (source folder): a folder on the server's machine inside one of ``sync.folder_roots``;
    default ``folder.path``."""

    source: Literal["folder", "intercom"] = "folder"
    path: str | None = Field(None, max_length=4096, description="folder on the server (source=folder)")


def allowed_folder(path: Path, roots: list[Path]) -> bool:
    """True when ``path`` (resolved, symlinks followed) is one of ``roots`` or inside one."""
    real = path.resolve()
    return any(real == (r := root.resolve()) or r in real.parents for root in roots)


@router.post("/v1/sync", response_class=StreamingResponse,
             responses={200: {"content": {NDJSON: {}}, "description": "one JSON event per line: started, total, "
                                                                      "advance*, then done (with the report) or error"},
                        403: {"model": ErrorResponse, "description": "the folder is outside sync.folder_roots, or the "
                                                                     "source syncs another workspace"},
                        404: {"model": ErrorResponse, "description": "no such folder on the server"},
                        409: {"model": ErrorResponse, "description": "a sync is already running, or the server has "
                                                                     "no folder / source configured"}})
def start_sync(body: SyncRequest, c: ContainerDep, caller: Syncer) -> StreamingResponse:
    """Start a sync in the server (one at a time) and stream its progress; answers keep being served meanwhile,
    and every article's new chunks replace its old ones as a unit.

    A client that disconnects stops following, not the sync (``GET /v1/sync`` shows how it ended)."""
    s = c.settings
    try:
        if body.source == "folder":
            folder = Path(body.path) if body.path else s.folder.path
            if folder is None:
                raise HTTPException(409, "no folder: send a path or set folder.path on the server")
            if not folder.is_dir():
                raise HTTPException(404, f"no such folder on the server: {folder}")
            if body.path and not allowed_folder(folder, s.sync.folder_roots):
                raise HTTPException(403, f"{folder} is outside sync.folder_roots "
                                         f"({', '.join(str(r) for r in s.sync.folder_roots)})")
            connector = c.folder_connector(folder, workspace=caller.workspace)
        else:
            connector = c.intercom_connector()
            if connector.workspace != caller.workspace:
                raise HTTPException(403, f"this key's workspace is {caller.workspace!r}; the Intercom source "
                                         f"syncs {connector.workspace!r}")
        job = c.sync_runner.start(connector)
    except SyncBusyError as exc:
        raise HTTPException(409, str(exc)) from None
    except ConfigError as exc:  # the server is not set up for this source: a state of the server, not the request
        raise HTTPException(409, str(exc)) from None
    return StreamingResponse((json.dumps(e) + "\n" for e in job.follow()), media_type=NDJSON)


@router.get("/v1/sync", responses={404: {"model": ErrorResponse, "description": "no sync since the server started"}})
def sync_status(c: ContainerDep, caller: Syncer) -> dict:
    """The running or last sync job: id, source, running, started/finished (epoch s), docs done/total, report or
    error."""
    job = c.sync_runner.current
    if job is None:
        raise HTTPException(404, "no sync has run since the server started")
    return job.status()
