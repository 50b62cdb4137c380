"""``GET /healthz``: is the index reachable, which generator answers, how many points, how warm the unit vector
cache is."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from citedesk.core.errors import IndexUnavailableError
from citedesk.serving.answer.schemas import HealthResponse, UnitCacheStatus
from citedesk.serving.api.deps import ContainerDep

__all__ = ["router"]

router = APIRouter(tags=["ops"])


def _unit_cache(c) -> UnitCacheStatus | None:
    cache, warmer = getattr(c.generator, "embedder", None), c.unit_warmer
    if not hasattr(cache, "max_entries"):
        return None
    return UnitCacheStatus(entries=len(cache), capacity=cache.max_entries,
                           warming=warmer is not None and warmer.running,
                           warm_passes=warmer.passes if warmer is not None else 0)


@router.get("/healthz", response_model=HealthResponse,
            responses={503: {"model": HealthResponse, "description": "index unreachable"}})
async def healthz(c: ContainerDep) -> JSONResponse:
    """200 when the index is reachable, 503 otherwise (body says which)."""
    try:
        reachable = await anyio.to_thread.run_sync(c.index.ping)
        points = 0
        if reachable:
            points = await anyio.to_thread.run_sync(lambda: c.index.count(c.settings.workspace, exact=False))
        body = HealthResponse(status="ok", index=c.index.location, index_reachable=True,
                              generator=c.generator.name, points=points, unit_cache=_unit_cache(c))
        return JSONResponse(body.model_dump())
    except IndexUnavailableError as exc:
        body = HealthResponse(status=f"degraded: {exc}", index=c.index.location, index_reachable=False,
                              generator=c.generator.name)
        return JSONResponse(body.model_dump(), status_code=503)
