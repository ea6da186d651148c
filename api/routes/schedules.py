"""/api/v1/schedules: recurring operations on a granted root (api.schedules)."""

from __future__ import annotations

from fastapi import APIRouter, status

from api import schedules
from api.deps import (
    CurrentUser,
    OwnedSchedule,
    SchedulerDep,
    SchedulesDep,
    ServiceFoldersDep,
)
from api.routes import errors
from api.schemas import ScheduleCreate, SchedulePublic, SchedulesPublic

router = APIRouter(prefix="/schedules", tags=["schedules"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(400, 401, 403, 409, 503))
async def create_schedule(
    body: ScheduleCreate, user: CurrentUser, service: SchedulesDep, folders: ServiceFoldersDep
) -> SchedulePublic:
    return await service.create(user, body, folders)


@router.get("", responses=errors(401, 503))
async def list_schedules(user: CurrentUser, service: SchedulesDep) -> SchedulesPublic:
    return await service.page(user)


@router.get("/{schedule_id}", responses=errors(401, 404, 503))
async def read_schedule(schedule: OwnedSchedule) -> SchedulePublic:
    return schedules.public(schedule)


@router.delete(
    "/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 404, 503)
)
async def delete_schedule(schedule: OwnedSchedule, scheduler: SchedulerDep) -> None:
    await scheduler.remove_schedule(schedule.id)
