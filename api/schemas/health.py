"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class HealthPublic(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentStatus(BaseModel):
    ok: bool
    version: str | None = None
    error: str | None = None


class StatusPublic(BaseModel):
    status: Literal["ready", "degraded"]
    version: str
    database: ComponentStatus
    prefect: ComponentStatus
