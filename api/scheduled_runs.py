"""Runs that schedules start, as operations of the schedule's owner.

A run of the scheduled-cleanup deployment makes a new operation whose id is the flow run's
(flows/organize.py). The API has no row for it until it learns of the run: from the event of
its first state past Scheduled (api.keeper), or from the sweep's list of such runs (missed
events). Then it is a row like any other (owner, root, options, the schedule's id), listed,
read, applied and rolled back as one, and counted by the overlapping-roots 409.

The owner is taken from the run's ticket, signed by this service's key (storage.tickets:
kind `schedule`, the owner and the root it covers), not from the slug alone: a schedule
written by hand in the Prefect UI with a slug that names a user makes no operation of theirs.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.models import Operation, User
from api.orchestrator import SCHEDULED_CLEANUP, RunInfo
from api.schedules import owner_and_type
from storage import tickets
from storage.operations import utcnow
from storage.paths import from_param

log = logging.getLogger("api")


def _owner(secret: str, info: RunInfo) -> uuid.UUID | None:
    """The owner the run's ticket names, when it is this service's, of kind schedule, for the
    run's own root and the slug's owner."""
    slug = owner_and_type(info)
    ticket = info.parameters.get("ticket")
    if slug is None or not isinstance(ticket, str):
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            ticket, tickets.ticket_key(secret), algorithms=[tickets.ALGORITHM]
        )
    except jwt.PyJWTError:
        return None
    covered = claims.get("kind") == "schedule" and claims.get("root") == info.parameters.get("root")
    if not covered or claims.get("owner") != slug[0]:
        return None
    try:
        return uuid.UUID(slug[0])
    except ValueError:
        return None


def row_of(info: RunInfo, owner: uuid.UUID) -> Operation:
    params = info.parameters
    kind = (owner_and_type(info) or ("", "organize"))[1]
    now = utcnow()
    return Operation(
        id=uuid.UUID(info.flow_run_id),
        owner_id=owner,
        operation_type=kind if kind in ("organize", "scan", "dedupe") else "organize",
        root_path=from_param(str(params.get("root", ""))),
        parameters=dict(params.get("options") or {}),
        dry_run=bool(params.get("dry_run", True)),
        deployment=SCHEDULED_CLEANUP,
        flow_run_id=info.flow_run_id,
        status=info.state.status,
        error=info.state.message,
        schedule_id=info.schedule_id,
        created_at=now,
        updated_at=now,
    )


async def adopt(session: AsyncSession, secret: str, runs: list[RunInfo]) -> list[Operation]:
    """Rows for the scheduled runs not in the database yet (committed); the new rows."""
    if not runs:
        return []
    ids = [uuid.UUID(r.flow_run_id) for r in runs]
    known = set(await session.scalars(select(Operation.id).where(Operation.id.in_(ids))))
    made = []
    for info in runs:
        if uuid.UUID(info.flow_run_id) in known:
            continue
        owner = _owner(secret, info)
        if owner is None or await session.get(User, owner) is None:
            log.debug("scheduled run %s: no user of this service owns it", info.flow_run_id)
            continue
        made.append(row_of(info, owner))
    if not made:
        return []
    session.add_all(made)
    try:
        await session.commit()
    except IntegrityError:  # another process (or the sweep) adopted them first
        await session.rollback()
        return []
    return made
