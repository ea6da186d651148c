"""Liveness (/health) and readiness (/api/v1/status: database, Prefect, versions)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api import health as checks
from api.deps import OrchestratorDep, SessionDep
from api.schemas import HealthPublic, StatusPublic

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> HealthPublic:
    return HealthPublic()


@router.get("/api/v1/status", responses={503: {"model": StatusPublic}})
async def readiness(session: SessionDep, orchestrator: OrchestratorDep) -> StatusPublic:
    body = await checks.readiness(session, orchestrator)
    if body.status != "ready":
        return JSONResponse(body.model_dump(mode="json"), status_code=503)  # type: ignore[return-value]
    return body
