"""Liveness (/health) and readiness (/api/v1/status: database, Prefect, versions)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import OrchestratorDep, SessionDep
from api.orchestrator import OrchestratorError
from api.schemas import ComponentStatus, HealthPublic, StatusPublic

router = APIRouter(tags=["health"])


def app_version() -> str:
    try:
        return version("fileorg")
    except PackageNotFoundError:
        return "unknown"


@router.get("/health")
async def health() -> HealthPublic:
    return HealthPublic()


@router.get("/api/v1/status", responses={503: {"model": StatusPublic}})
async def readiness(session: SessionDep, orchestrator: OrchestratorDep) -> StatusPublic:
    try:
        await session.execute(text("SELECT 1"))
        database = ComponentStatus(ok=True, version=session.get_bind().dialect.name)
    except Exception as exc:  # readiness reports any failure rather than raising it
        database = ComponentStatus(ok=False, error=f"{type(exc).__name__}: {exc}")
    try:
        prefect = ComponentStatus(ok=True, version=await orchestrator.version())
    except OrchestratorError as exc:
        prefect = ComponentStatus(ok=False, error=str(exc))
    ready = database.ok and prefect.ok
    body = StatusPublic(
        status="ready" if ready else "degraded",
        version=app_version(),
        database=database,
        prefect=prefect,
    )
    if not ready:
        return JSONResponse(body.model_dump(mode="json"), status_code=503)  # type: ignore[return-value]
    return body
