"""``/v1/guidance``: the caller's workspace guidance — read it (``audit-read``), publish a new version (``admin``).

A key is bound to one workspace, so it reads and writes only that workspace's guidance (with auth off: the
default workspace). Every ``PUT`` stores a new version; the newest is in force in every replica within
``guidance.cache_seconds``. To roll back, ``PUT`` an older version's content again.
"""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, HTTPException, Path as PathParam, Query, Request

from citedesk.serving.answer.guidance import Guidance, GuidanceVersion
from citedesk.serving.answer.guidance_store import GuidanceStore
from citedesk.serving.answer.schemas import ErrorResponse
from citedesk.serving.api.auth import Principal, require_scope

__all__ = ["router"]

Reader = Annotated[Principal, Depends(require_scope("audit-read"))]
Admin = Annotated[Principal, Depends(require_scope("admin"))]


def get_store(request: Request) -> GuidanceStore:
    """The app's guidance store (503 when ``guidance.enabled`` is false)."""
    store = request.app.state.container.guidance
    if store is None:
        raise HTTPException(503, "workspace guidance is disabled (guidance.enabled = false)")
    return store


Store = Annotated[GuidanceStore, Depends(get_store)]

router = APIRouter(prefix="/v1/guidance", tags=["guidance"], responses={
    401: {"model": ErrorResponse, "description": "missing, unknown or revoked API key (when auth.enabled)"},
    403: {"model": ErrorResponse, "description": "the API key lacks the route's scope"},
    503: {"model": ErrorResponse, "description": "guidance disabled"}})


@router.get("", response_model=GuidanceVersion, responses={404: {"model": ErrorResponse}})
def get_guidance(who: Reader, store: Store) -> GuidanceVersion:
    """The guidance in force for the caller's workspace (404 when none was ever published)."""
    current = store.get(who.workspace)
    if current is None:
        raise HTTPException(404, f"workspace {who.workspace!r} has no guidance yet (PUT /v1/guidance)")
    return current


@router.put("", response_model=GuidanceVersion)
async def put_guidance(who: Admin, body: Guidance, store: Store) -> GuidanceVersion:
    """Publish ``body`` as the workspace's next guidance version (instructions and escalation rules)."""
    return await anyio.to_thread.run_sync(lambda: store.publish(who.workspace, body, by=who.label))


@router.get("/versions", response_model=list[GuidanceVersion])
def list_versions(who: Reader, store: Store, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[GuidanceVersion]:
    """Every stored version of the workspace's guidance, newest first."""
    return store.history(who.workspace, limit=limit)


@router.get("/versions/{version}", response_model=GuidanceVersion, responses={404: {"model": ErrorResponse}})
def get_version(who: Reader, store: Store, version: Annotated[int, PathParam(ge=1, le=2**31 - 1)]) -> GuidanceVersion:
    """One stored version."""
    found = store.get(who.workspace, version)
    if found is None:
        raise HTTPException(404, f"workspace {who.workspace!r} has no guidance version {version}")
    return found
