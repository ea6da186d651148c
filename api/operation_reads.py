"""Operations as their owner reads them: one row (another user's is 404), and the list a page
at a time, newest first, by keyset cursor or offset, in one query (GET /operations).

Only the row is read, with its cached status and record (api.cache): nothing from Prefect or
the data folder, so a page costs one query however many operations it shows.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import NotFound
from api.models import Operation
from api.orchestrator import APPLY_PLAN, ORGANIZE, ROLLBACK
from api.schemas import OperationPublic, OperationsPublic, StageTimingPublic
from storage.errors import BadCursor
from storage.queries import keyset

RUNS = {ORGANIZE: "organize", APPLY_PLAN: "apply", ROLLBACK: "rollback"}


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
