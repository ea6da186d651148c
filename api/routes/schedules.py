"""/api/v1/schedules: recurring operations on a granted root, as Prefect deployment schedules.

Each schedule is a schedule of the scheduled-cleanup deployment with its own parameters (root,
plan options, dry run), so it shows (and can be paused) in the Prefect UI. Its slug records
the owner: `fileorg:{user id}:{operation type}:{random}`; another user's schedule is 404.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, status
from sqlalchemy import select

from api import roots, schedules
from api.deps import CurrentUser, ServiceFoldersDep, SessionDep, SettingsDep
from api.errors import Forbidden, NotFound, Unavailable
from api.models import RootGrant, User, utcnow
from api.operations import plan_parameters
from api.orchestrator import (
    PrefectOrchestrator,
    PrefectScheduler,
    ScheduleInfo,
    Scheduler,
    ScheduleSpec,
)
from api.routes import errors
from api.schemas import ScheduleCreate, SchedulePublic, SchedulesPublic
from api.service_folders import refuse_overlap
from storage import tickets
from storage.paths import from_param, to_param
from storage.roots import within

router = APIRouter(prefix="/schedules", tags=["schedules"])
SLUG_PREFIX = "fileorg"


def get_scheduler(request: Request) -> Scheduler:
    """Prefect's deployment schedules, or the orchestrator's own (the tests' fake)."""
    orchestrator = request.app.state.orchestrator
    if isinstance(orchestrator, PrefectOrchestrator):
        return PrefectScheduler(orchestrator)
    if isinstance(orchestrator, Scheduler):
        return orchestrator
    raise Unavailable("this orchestrator has no schedules")


SchedulerDep = Annotated[Scheduler, Depends(get_scheduler)]


def _owner_and_type(info: ScheduleInfo) -> tuple[str, str] | None:
    parts = info.slug.split(":")
    if len(parts) != 4 or parts[0] != SLUG_PREFIX:
        return None
    return parts[1], parts[2]


def public(info: ScheduleInfo) -> SchedulePublic:
    owned = _owner_and_type(info)
    params: dict[str, Any] = info.parameters
    return SchedulePublic(
        id=uuid.UUID(info.id),
        operation_type=owned[1] if owned else "organize",
        root_path=from_param(str(params.get("root", ""))),
        dry_run=bool(params.get("dry_run", True)),
        parameters=dict(params.get("options") or {}),
        cron=info.cron,
        interval_seconds=info.interval_seconds,
        timezone=info.timezone,
        active=info.active,
    )


async def _mine(scheduler: Scheduler, user: User) -> list[ScheduleInfo]:
    found = await scheduler.schedules()
    return [s for s in found if (_owner_and_type(s) or ("", ""))[0] == str(user.id)]


async def owned_schedule(
    scheduler: SchedulerDep, user: CurrentUser, schedule_id: Annotated[uuid.UUID, Path()]
) -> ScheduleInfo:
    for info in await _mine(scheduler, user):
        if info.id == str(schedule_id):
            return info
    raise NotFound("schedule not found")


OwnedSchedule = Annotated[ScheduleInfo, Depends(owned_schedule)]


@router.post("", status_code=status.HTTP_201_CREATED, responses=errors(400, 401, 403, 409, 503))
async def create_schedule(
    request: Request,
    body: ScheduleCreate,
    user: CurrentUser,
    session: SessionDep,
    scheduler: SchedulerDep,
    folders: ServiceFoldersDep,
    settings: SettingsDep,
) -> SchedulePublic:
    schedules.check_interval(body.interval_seconds, settings)
    grants = await session.scalars(select(RootGrant.path).where(RootGrant.user_id == user.id))
    root = await roots.authorize(list(grants), body.root_path)
    refuse_overlap(root, folders, Forbidden)
    options, dry_run = plan_parameters(body, root)
    slug = f"{SLUG_PREFIX}:{user.id}:{body.operation_type.value}:{secrets.token_hex(4)}"
    parameters: dict[str, Any] = {
        "operation_id": "",
        "root": to_param(root),
        "options": options,
        "dry_run": dry_run,
        "root_identity": await roots.identity(root),  # every run checks it (issue 12 #2)
        "owner": str(user.id),  # and that the grant was not revoked since (#3)
        "authorized_at": utcnow().isoformat(),
    }
    signed = {k: v for k, v in parameters.items() if k not in ("operation_id", "authorized_at")}
    # No expiry: a schedule's parameters are fixed; its runs are re-checked by revocations.
    secret = request.app.state.secret
    parameters["ticket"] = tickets.sign(secret, {"kind": "schedule", **signed}, expires=False)
    spec = ScheduleSpec(
        slug=slug,
        parameters=parameters,
        cron=body.cron,
        interval_seconds=body.interval_seconds,
        timezone=body.timezone,
        active=body.active,
    )

    async def held() -> int:
        return len(await _mine(scheduler, user))

    async with schedules.within_quota(request.app, session, settings, user.id, held):
        return public(await scheduler.add_schedule(spec))


@router.get("", responses=errors(401, 503))
async def list_schedules(user: CurrentUser, scheduler: SchedulerDep) -> SchedulesPublic:
    mine = [public(s) for s in await _mine(scheduler, user)]
    return SchedulesPublic(data=mine, count=len(mine))


@router.get("/{schedule_id}", responses=errors(401, 404, 503))
async def read_schedule(schedule: OwnedSchedule) -> SchedulePublic:
    return public(schedule)


@router.delete(
    "/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(401, 404, 503)
)
async def delete_schedule(schedule: OwnedSchedule, scheduler: SchedulerDep) -> None:
    await scheduler.remove_schedule(schedule.id)


async def pause_revoked(
    scheduler: Scheduler, user_id: uuid.UUID, revoked: list[str], remaining: list[str]
) -> int:
    """Pause the user's active schedules on a revoked root that no remaining grant holds.
    Paused, not deleted: the user (or an admin who grants the root again) sees what was
    stopped and why, and deletes it or creates it anew (a paused one stays refused: its runs
    were authorized before the revoke). Returns how many were paused."""
    paused = 0
    for info in await scheduler.schedules():
        owned = _owner_and_type(info)
        if owned is None or owned[0] != str(user_id) or not info.active:
            continue
        root = from_param(str(info.parameters.get("root", "")))
        if any(within(root, r) for r in revoked) and not any(within(root, r) for r in remaining):
            await scheduler.pause_schedule(info.id)
            paused += 1
    return paused
