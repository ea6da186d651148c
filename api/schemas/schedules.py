"""Schedules: an operation to start on a cron or an interval."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from api.orchestrator import validate_cron
from api.schemas.operations import OperationCreate
from storage.cron import InvalidSchedule, check_timezone


class ScheduleCreate(OperationCreate):
    """An operation to start on a schedule: a cron expression or an interval, in a timezone.

    Every run is a new operation on the scheduled-cleanup deployment; a dry run only plans.
    A cron has five fields and must fire within a year (storage.cron, the CLI's rule too); an
    interval is at least the operator's minimum (checked by the route: it is a setting).
    """

    timezone: str = Field(default="UTC", min_length=1, max_length=64)
    cron: str | None = Field(default=None, min_length=1, max_length=120, examples=["0 3 * * 0"])
    interval_seconds: int | None = Field(default=None, ge=1, le=366 * 86400)
    active: bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            check_timezone(value)
        except InvalidSchedule as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        try:
            return validate_cron(value, info.data.get("timezone", "UTC"))
        except InvalidSchedule as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _one_rule(self) -> ScheduleCreate:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron and interval_seconds")
        return self


class SchedulePublic(BaseModel):
    id: uuid.UUID
    operation_type: str
    root_path: str
    dry_run: bool
    parameters: dict[str, Any]
    cron: str | None
    interval_seconds: float | None
    timezone: str | None
    active: bool = Field(description="False when paused (here or in the Prefect UI)")


class SchedulesPublic(BaseModel):
    data: list[SchedulePublic]
    count: int
