"""Readiness: whether the database and Prefect answer, and the versions of each."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api.orchestrator import Orchestrator, OrchestratorError
from api.schemas import ComponentStatus, StatusPublic


def app_version() -> str:
    try:
        return version("fileorg")
    except PackageNotFoundError:
        return "unknown"


async def readiness(session: AsyncSession, orchestrator: Orchestrator) -> StatusPublic:
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
    return StatusPublic(
        status="ready" if ready else "degraded",
        version=app_version(),
        database=database,
        prefect=prefect,
    )
