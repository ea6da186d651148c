"""Schedules: recurring operations on a granted root, as Prefect deployment schedules.

Each schedule is a schedule of the scheduled-cleanup deployment with its own parameters (root,
plan options, dry run, a signed ticket), so it shows (and can be paused) in the Prefect UI. Its
slug records the owner: `fileorg:{user id}:{operation type}:{random}`; another user's schedule
is as absent as one that never was.

The operator's limits: the cron rule is in storage.cron (the CLI's too) and the request schema
applies it; the shortest interval and the number per user are settings, so they are checked
when a schedule is created. The quota is counted and the schedule created under one lock per
user: an asyncio lock in the process, plus a PostgreSQL advisory lock across processes (a
SQLite database serves one process: `fileorg serve`).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from api import admin, roots
from api.config import Settings
from api.errors import ApiError, Conflict, Forbidden, NotFound, Unavailable
from api.models import User
from api.operations import plan_parameters
from api.orchestrator import (
    Orchestrator,
    OrchestratorError,
    PrefectOrchestrator,
    PrefectScheduler,
    RunInfo,
    ScheduleInfo,
    Scheduler,
    ScheduleSpec,
)
from api.schemas import ScheduleCreate, SchedulePublic, SchedulesPublic
from api.service_folders import ServiceFolders, refuse_overlap
from storage import tickets
from storage.locations import DataStore
from storage.operations import utcnow
from storage.paths import from_param, to_param
from storage.roots import within

QUOTA_LOCK_KEY = 0x0F11E0A8  # with the user's key: pg_advisory_xact_lock(int, int)
SLUG_PREFIX = "fileorg"
log = logging.getLogger("api")


def scheduler_of(orchestrator: Orchestrator) -> Scheduler:
    """Prefect's deployment schedules, or the orchestrator's own (the tests' fake)."""
    if isinstance(orchestrator, PrefectOrchestrator):
        return PrefectScheduler(orchestrator)
    if isinstance(orchestrator, Scheduler):
        return orchestrator
    raise Unavailable("this orchestrator has no schedules")


def owner_and_type(info: ScheduleInfo | RunInfo) -> tuple[str, str] | None:
    """(user id, operation type) from a schedule's slug (or a scheduled run's, RunInfo); None
    for one the API did not make."""
    parts = info.slug.split(":")
    if len(parts) != 4 or parts[0] != SLUG_PREFIX:
        return None
    return parts[1], parts[2]


def public(info: ScheduleInfo) -> SchedulePublic:
    owned = owner_and_type(info)
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


async def mine(scheduler: Scheduler, user_id: uuid.UUID) -> list[ScheduleInfo]:
    found = await scheduler.schedules()
    return [s for s in found if (owner_and_type(s) or ("", ""))[0] == str(user_id)]


async def owned(scheduler: Scheduler, user_id: uuid.UUID, schedule_id: uuid.UUID) -> ScheduleInfo:
    for info in await mine(scheduler, user_id):
        if info.id == str(schedule_id):
            return info
    raise NotFound("schedule not found")


def check_interval(interval_seconds: int | None, settings: Settings) -> None:
    """422, as the schema's own checks answer, for an interval under the operator's minimum."""
    shortest = settings.min_schedule_interval_seconds
    if interval_seconds is None or interval_seconds >= shortest:
        return
    raise RequestValidationError(
        [
            {
                "type": "greater_than_equal",
                "loc": ("body", "interval_seconds"),
                "msg": f"a schedule runs at most every {shortest} s: give at least {shortest} "
                "seconds (FILEORG_MIN_SCHEDULE_INTERVAL_SECONDS)",
                "input": interval_seconds,
            }
        ]
    )


def _user_lock(app: FastAPI, user_id: uuid.UUID) -> asyncio.Lock:
    locks: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] | None = getattr(
        app.state, "schedule_locks", None
    )
    if locks is None:
        locks = app.state.schedule_locks = weakref.WeakValueDictionary()
    lock = locks.get(user_id)
    if lock is None:
        lock = locks[user_id] = asyncio.Lock()
    return lock


@asynccontextmanager
async def within_quota(
    app: FastAPI,
    session: AsyncSession,
    settings: Settings,
    user_id: uuid.UUID,
    count: Callable[[], Awaitable[int]],
) -> AsyncIterator[None]:
    """Run the body (which creates one schedule) only while the user is under the quota."""
    async with _user_lock(app, user_id):
        if session.get_bind().dialect.name == "postgresql":
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:key, :user)"),
                {"key": QUOTA_LOCK_KEY, "user": user_id.int % 2**31},
            )
        try:
            held = await count()
            if held >= settings.schedules_per_user:
                raise Conflict(
                    f"you have {held} schedule{'' if held == 1 else 's'}, the most allowed "
                    f"({settings.schedules_per_user}): delete one first"
                )
            yield
        finally:
            await session.commit()  # ends the transaction, and with it the advisory lock


def _parameters(
    secret: str,
    user: User,
    root: str,
    options: dict[str, Any],
    dry_run: bool,
    identity: list[int] | None,
) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "operation_id": "",
        "root": to_param(root),
        "options": options,
        "dry_run": dry_run,
        "root_identity": identity,  # every run checks it (issue 12 #2)
        "owner": str(user.id),  # and that the grant was not revoked since (#3)
        "authorized_at": utcnow().isoformat(),
    }
    signed = {k: v for k, v in parameters.items() if k not in ("operation_id", "authorized_at")}
    # No expiry: a schedule's parameters are fixed; its runs are re-checked by revocations.
    parameters["ticket"] = tickets.sign(secret, {"kind": "schedule", **signed}, expires=False)
    return parameters


@dataclass
class ScheduleService:
    app: FastAPI  # holds the per-user quota locks
    session: AsyncSession
    scheduler: Scheduler
    settings: Settings
    secret: str  # signs the runs' tickets (storage.tickets)

    async def create(
        self, user: User, body: ScheduleCreate, folders: ServiceFolders
    ) -> SchedulePublic:
        check_interval(body.interval_seconds, self.settings)
        root = await roots.authorize(await admin.root_paths(self.session, user.id), body.root_path)
        refuse_overlap(root, folders, Forbidden)
        roots.refuse_broad(root, body.i_mean_it)
        await roots.refuse_left_alone(root, body.include_hidden)
        options, dry_run = plan_parameters(body, root)
        identity = await roots.identity(root)
        spec = ScheduleSpec(
            slug=f"{SLUG_PREFIX}:{user.id}:{body.operation_type.value}:{secrets.token_hex(4)}",
            parameters=_parameters(self.secret, user, root, options, dry_run, identity),
            cron=body.cron,
            interval_seconds=body.interval_seconds,
            timezone=body.timezone,
            active=body.active,
        )

        async def held() -> int:
            return len(await mine(self.scheduler, user.id))

        async with within_quota(self.app, self.session, self.settings, user.id, held):
            return public(await self.scheduler.add_schedule(spec))

    async def page(self, user: User) -> SchedulesPublic:
        found = [public(s) for s in await mine(self.scheduler, user.id)]
        return SchedulesPublic(data=found, count=len(found))


async def pause_revoked(
    scheduler: Scheduler, user_id: uuid.UUID, revoked: list[str], remaining: list[str]
) -> int:
    """Pause the user's active schedules on a revoked root that no remaining grant holds.
    Paused, not deleted: the user (or an admin who grants the root again) sees what was
    stopped and why, and deletes it or creates it anew (a paused one stays refused: its runs
    were authorized before the revoke). Returns how many were paused."""
    paused = 0
    for info in await scheduler.schedules():
        owner = owner_and_type(info)
        if owner is None or owner[0] != str(user_id) or not info.active:
            continue
        root = from_param(str(info.parameters.get("root", "")))
        if any(within(root, r) for r in revoked) and not any(within(root, r) for r in remaining):
            await scheduler.pause_schedule(info.id)
            paused += 1
    return paused


async def revoke_grant(
    session: AsyncSession,
    store: DataStore,
    orchestrator: Orchestrator,
    user_id: uuid.UUID,
    root: str,
) -> None:
    """Revoke a grant (api.admin.revoke), then pause the user's schedules on it."""
    revoked = await admin.revoke(session, store, user_id, root)
    remaining = await admin.root_paths(session, user_id)
    try:
        await pause_revoked(scheduler_of(orchestrator), user_id, revoked, remaining)
    except (ApiError, OrchestratorError) as exc:  # the revoke stands; its runs refuse anyway
        log.warning("revoked %s of user %s; schedules not paused: %s", revoked, user_id, exc)
