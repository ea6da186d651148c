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
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from api import cache, roots
from api.admin import root_paths
from api.errors import Conflict, Forbidden, NotFound
from api.models import Operation, User
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
    OperationsPublic,
    OperationStarted,
    OperationType,
    StageTimingPublic,
)
from api.service_folders import ServiceFolders, refuse_overlap
from storage import locks, tickets
from storage import operations as records
from storage.errors import BadCursor, RootError
from storage.locations import DataStore
from storage.objects import is_object_url
from storage.operations import (
    ACTIVE,
    OperationRecord,
    PlanOptions,
    check_options_for_root,
    utcnow,
)
from storage.queries import keyset
from storage.rollback_order import rollback_refusal
from storage.root_identity import RootChanged, check_identity
from storage.roots import within

RUNS = {ORGANIZE: "organize", APPLY_PLAN: "apply", ROLLBACK: "rollback"}
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


def public(op: Operation) -> OperationPublic:
    """The row as the API shows it: its cached record (api.cache), nothing read elsewhere."""
    return OperationPublic(
        id=op.id,
        operation_type=op.operation_type,
        root_path=op.root_path,
        dry_run=op.dry_run,
        parameters=op.parameters,
        source_operation_id=op.source_operation_id,
        run=RUNS.get(op.deployment, "organize"),  # type: ignore[arg-type]
        flow_run_id=op.flow_run_id,
        status=op.status,  # type: ignore[arg-type]
        state=op.state,
        stage=op.stage,
        stages={k: StageTimingPublic(**v) for k, v in (op.stages or {}).items()},
        summary=op.summary or {},
        error=op.error,
        created_at=op.created_at,
        updated_at=op.updated_at,
        schedule_id=op.schedule_id,
        synced_at=op.synced_at,
    )


# Newest first; the id breaks ties (a unique, non-null column), descending too. A cursor names
# the last row of a page by both (storage.queries.keyset): the page after it is the rows below
# that row in this order, so operations started while a user pages (their own, a schedule's,
# another replica's) never make a page repeat or skip a row, as they shift an offset.
ORDER = keyset.Order(
    "created_at", "time", descending=True, tiebreak="id", tiebreak_kind="str",
    tiebreak_descending=True,
)  # fmt: skip


def _bound(owner_id: uuid.UUID, status: str | None) -> bytes:
    """What an operations cursor is made for: the owner's list, with this status filter."""
    return keyset.binding(f"operations:{owner_id}", ORDER, {"status": status})


def _after(cursor: str, bound: bytes) -> ColumnElement[bool]:
    """The rows after the one `cursor` names, in ORDER (BadCursor: a 400)."""
    created_at, op_id = keyset.decode(cursor, bound, ORDER).values
    try:
        after_id = uuid.UUID(op_id)
    except (TypeError, ValueError):
        raise BadCursor("the cursor is malformed: start again without it") from None
    if not isinstance(created_at, datetime) or created_at.tzinfo is None:
        raise BadCursor("the cursor is malformed: start again without it")
    return or_(
        Operation.created_at < created_at,
        and_(Operation.created_at == created_at, Operation.id < after_id),
    )


async def page(
    session: AsyncSession,
    owner_id: uuid.UUID,
    status: str | None,
    limit: int,
    offset: int,
    cursor: str | None = None,
) -> OperationsPublic:
    """One query: the page (`offset` rows in, or the rows after `cursor`), a row more to tell
    whether another page follows, and the count of all the owner's rows with the filter (a
    window over them; a subquery after a cursor, whose rows are not all of them)."""
    if cursor is not None and offset:
        raise BadCursor("give a cursor or an offset, not both")
    bound = _bound(owner_id, status)
    where = [Operation.owner_id == owner_id]
    if status is not None:
        where.append(Operation.status == status)
    total = select(func.count()).select_from(Operation).where(*where).scalar_subquery()
    rows = list(
        await session.execute(
            select(Operation, func.count().over() if cursor is None else total)
            .where(*where, *([] if cursor is None else [_after(cursor, bound)]))
            .order_by(Operation.created_at.desc(), Operation.id.desc())
            .limit(limit + 1)
            .offset(offset)
        )
    )
    count: int | None = int(rows[0][1]) if rows else 0
    if not rows and (offset or cursor):  # past the end: the window had no row to ride on
        count = await session.scalar(select(func.count()).select_from(Operation).where(*where))
    shown = [row[0] for row in rows[:limit]]
    following = None
    if len(rows) > limit:
        last = shown[-1]
        following = keyset.encode(keyset.Cursor([last.created_at, str(last.id)]), bound)
    return OperationsPublic(
        data=[public(op) for op in shown], count=count or 0, next_cursor=following
    )


async def owned(session: AsyncSession, owner_id: uuid.UUID, operation_id: uuid.UUID) -> Operation:
    """The owner's operation; someone else's is as absent as one that never was (404)."""
    operation = await session.scalar(
        select(Operation).where(Operation.id == operation_id, Operation.owner_id == owner_id)
    )
    if operation is None:
        raise NotFound("operation not found")
    return operation


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
