"""Operations: start, follow, apply, roll back and cancel runs of the organize deployments.

Operation types map onto the organize flow:
- organize: plan with the given layout and duplicates policy; a dry run is reviewed, then
  applied with POST /apply; `dry_run: false` plans and applies in one run.
- scan: a dry run with the duplicates policy `report`: listing, categories, report. Never applied.
- dedupe: a dry run with the requested duplicates policy, read through /duplicates and /plan.
  Never applied: the planner has no "keep the layout, only act on duplicates" mode, so applying
  it would also reorganize every kept file; act on duplicates with an organize operation.
A rollback is an operation of its own (type `rollback`) over the one it undoes.

Two operations whose roots overlap never run at once (409): the check and the insert happen
under one lock (an asyncio lock in the process, plus a PostgreSQL advisory lock across them).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from api import cache, roots
from api.admin import root_paths
from api.errors import Conflict, Forbidden
from api.models import Operation, User
from api.operation_reads import public
from api.orchestrator import (
    APPLY_PLAN,
    ORGANIZE,
    ROLLBACK,
    TERMINAL,
    Orchestrator,
    OrchestratorError,
)
from api.schemas import (
    OperationCreate,
    OperationPublic,
    OperationStarted,
    OperationType,
)
from api.service_folders import ServiceFolders, refuse_overlap
from storage import locks, tickets
from storage import operations as records
from storage.errors import RootError
from storage.locations import DataStore
from storage.objects import is_object_url
from storage.operations import (
    ACTIVE,
    OperationRecord,
    PlanOptions,
    check_options_for_root,
    utcnow,
)
from storage.rollback_order import rollback_refusal
from storage.root_identity import RootChanged, check_identity
from storage.roots import within

START_LOCK_KEY = 0x0F11E0A7


def plan_parameters(body: OperationCreate, root: str) -> tuple[dict[str, Any], bool]:
    """The flow's options and dry-run flag; refuses (400) what the root cannot do."""
    duplicates = "report" if body.operation_type is OperationType.scan else body.duplicates
    options = PlanOptions.model_validate(
        {
            "mode": body.organization_mode,
            "template": body.template,
            "duplicates": duplicates,
            "keep": body.keep,
            "include_empty": body.include_empty,
            "exclude": body.exclude,
            "include_hidden": body.include_hidden,
            "projects": body.projects,
            "albums": body.albums,
            "keep_subfolders": body.keep_subfolders,
            "undated": body.undated,
            "keep_empty_folders": body.keep_empty_folders,
        }
    )
    check_options_for_root(options, root)
    dry_run = body.dry_run if body.operation_type is OperationType.organize else True
    return options.model_dump(mode="json"), dry_run


def _same_root(root: str, identity: list[int] | None) -> None:
    try:
        check_identity(root, identity)
    except RootChanged as exc:
        raise Forbidden(str(exc)) from None
    except RootError as exc:  # missing or unreadable now: nothing to do until it is back
        raise Conflict(str(exc)) from None


@dataclass
class OperationService:
    session: AsyncSession
    orchestrator: Orchestrator
    store: DataStore
    lock: asyncio.Lock
    secret: str = ""  # signs the runs' tickets (storage.tickets)

    # --- reading ----------------------------------------------------------------------------

    async def read(self, op: Operation) -> OperationPublic:
        return public(op)

    async def refresh(self, ops: Sequence[Operation]) -> None:
        """Confirm the rows now (api.cache): for the paths that change an operation."""
        await cache.confirm(self.session, self.orchestrator, self.store, ops)

    # --- changing ---------------------------------------------------------------------------

    async def start(
        self, user: User, body: OperationCreate, folders: ServiceFolders
    ) -> OperationStarted:
        root = await roots.authorize(await root_paths(self.session, user.id), body.root_path)
        refuse_overlap(root, folders, Forbidden)  # the service's own folders
        roots.refuse_broad(root, body.i_mean_it)
        await roots.refuse_left_alone(root, body.include_hidden)
        options, dry_run = plan_parameters(body, root)
        identity = await roots.identity(root)
        op = Operation(
            id=uuid.uuid4(),
            owner_id=user.id,
            operation_type=body.operation_type.value,
            root_path=root,
            parameters=options,
            dry_run=dry_run,
            deployment=ORGANIZE,
            status="pending",
        )
        parameters = {
            "operation_id": str(op.id),
            "root": root,
            "options": options,
            "root_identity": identity,
            "owner": str(user.id),
            "authorized_at": utcnow().isoformat(),
        }
        async with self._exclusive(root):
            self.session.add(op)
        signed = {"kind": "organize", "op": str(op.id), "dry_run": dry_run, **parameters}
        del signed["operation_id"], signed["authorized_at"]
        ticket = tickets.sign(self.secret, signed)
        return await self._launch(
            op, ORGANIZE, {**parameters, "dry_run": dry_run, "ticket": ticket}
        )

    async def apply(self, op: Operation) -> OperationStarted:
        await run_in_threadpool(locks.refuse_busy, self.store, str(op.id), op.root_path)
        record = await self._settled(op, "applied")
        repeated = (
            records.repeat_refusal(record, "apply", f"POST /api/v1/operations/{record.id}/rollback")
            if record
            else None
        )
        if repeated:
            raise Conflict(repeated)  # the same line as the CLI's (docs/api.md)
        stopped = records.stopped_rolling_back(record) if record else None
        if stopped:
            raise Conflict(stopped)
        if record is None or not records.applicable(record):
            shown = record.status if record else op.status
            raise Conflict(
                f"operation {op.id} is not a finished dry run (status: {shown}); "
                "only a reviewed plan can be applied"
            )
        await self._still_granted(op, record)
        newer = await run_in_threadpool(records.newer_change, self.store, record)
        if newer is not None and record.status == "planned":  # an interrupted one is finished
            # Not the CLI's line: that names the other operation, which may be another user's.
            raise Conflict(
                f"the plan of {op.id} is stale: another operation changed files under "
                f"{op.root_path} after it was made; plan again"
            )
        async with self._exclusive(op.root_path, exclude=op.id):
            op.deployment, op.status, op.flow_run_id, op.error = APPLY_PLAN, "pending", None, None
        ticket = self._ticket("apply", op)
        return await self._launch(op, APPLY_PLAN, {"operation_id": str(op.id), "ticket": ticket})

    async def rollback(self, user: User, op: Operation) -> OperationStarted:
        await run_in_threadpool(locks.refuse_busy, self.store, str(op.id), op.root_path)
        record = await self._settled(op, "rolled back")
        repeated = records.repeat_refusal(record, "rollback") if record else None
        if repeated:
            raise Conflict(repeated)  # the same line as the CLI's (docs/api.md)
        if record is None or not records.changed_files(record):
            shown = record.status if record else op.status
            raise Conflict(
                f"operation {op.id} was never applied (status: {shown}): nothing to undo"
            )
        await self._still_granted(op, record)
        on_top = await run_in_threadpool(rollback_refusal, self.store, record, False)
        if on_top is not None:
            raise Conflict(on_top)  # the CLI's names the other operation (maybe not theirs)
        undo = Operation(
            id=uuid.uuid4(),
            owner_id=user.id,
            operation_type="rollback",
            root_path=op.root_path,
            parameters={},
            dry_run=False,
            source_operation_id=op.id,
            deployment=ROLLBACK,
            status="pending",
        )
        async with self._exclusive(op.root_path):
            self.session.add(undo)
        ticket = self._ticket("rollback", op)
        return await self._launch(undo, ROLLBACK, {"operation_id": str(op.id), "ticket": ticket})

    async def cancel(self, op: Operation) -> OperationStarted:
        await self.refresh([op])
        if op.status in TERMINAL:
            raise Conflict(f"operation {op.id} is already {op.status}: nothing to cancel")
        if op.flow_run_id is None:
            op.status = "cancelled"
        else:
            await self.orchestrator.cancel(op.flow_run_id)
            await self.refresh([op])
        await self.session.commit()
        return OperationStarted(operation_id=op.id, status=op.status)  # type: ignore[arg-type]

    def _ticket(self, kind: str, op: Operation) -> str:
        claims = {"kind": kind, "op": str(op.id), "owner": str(op.owner_id), "root": op.root_path}
        return tickets.sign(self.secret, claims)

    async def _still_granted(self, op: Operation, record: OperationRecord) -> None:
        """403 unless the owner still holds a grant of the root (a revoke stops an older dry
        run from being applied or rolled back) and the root is still the folder it was when
        the operation was authorized (storage.root_identity)."""
        grants = await root_paths(self.session, op.owner_id)
        if not any(within(op.root_path, grant) for grant in grants):
            raise Forbidden("root_path is no longer inside a root granted to you")
        if not is_object_url(op.root_path):
            await run_in_threadpool(_same_root, op.root_path, record.root_identity)

    async def _settled(self, op: Operation, verb: str) -> OperationRecord | None:
        """The record of an organize operation whose last run has finished."""
        if op.operation_type != OperationType.organize.value:
            raise Conflict(
                f"a {op.operation_type} operation cannot be {verb}: "
                "only organize operations change files"
            )
        await self.refresh([op])
        if op.status not in TERMINAL:
            raise Conflict(f"operation {op.id} is still {op.status}; wait for it or cancel it")
        return await run_in_threadpool(cache.load_record, self.store, op.id)

    @asynccontextmanager
    async def _exclusive(self, root: str, exclude: uuid.UUID | None = None) -> AsyncIterator[None]:
        """Check for running operations on overlapping roots and commit the body's changes,
        all under one lock."""
        async with self.lock:
            if self.session.get_bind().dialect.name == "postgresql":
                await self.session.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": START_LOCK_KEY}
                )
            active = await self.session.scalars(
                select(Operation).where(Operation.status.in_(ACTIVE), Operation.id != exclude)
            )
            # Runs of schedules too: they are rows once seen (api.scheduled_runs).
            overlapping = [o for o in active if roots.overlaps(o.root_path, root)]
            await cache.confirm(self.session, self.orchestrator, self.store, overlapping, False)
            if any(other.status in ACTIVE for other in overlapping):
                await self.session.commit()
                raise Conflict("another operation on an overlapping root is running")
            yield
            await self.session.commit()

    async def _launch(
        self, op: Operation, deployment: str, parameters: dict[str, Any]
    ) -> OperationStarted:
        try:
            op.flow_run_id = await self.orchestrator.start(deployment, parameters)
        except OrchestratorError as exc:
            op.status, op.error = "failed", str(exc)
            await self.session.commit()
            raise
        await self.session.commit()
        started = OperationStarted(operation_id=op.id, status=op.status)  # type: ignore[arg-type]
        await self.refresh([op])  # the cache from the start; events keep it from here
        return started
