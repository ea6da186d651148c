"""The cached status of operations: each row of `operations` holds its last run's status and
its record's state, stage, stage timings and summary, so reads are one query of the database.

The operation record (operation.json in the data folder) stays the flows' source of truth; the
row is a copy the API rebuilds from it (`fill`) whenever it confirms an operation (`confirm`):
Prefect's state of the run (unfinished rows only) and the record, read once for the row.
Who confirms, and when, is api.keeper's (events, terminal states, the sweep) and the write
paths' (start, apply, cancel, rollback, the 409), never a read.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.concurrency import run_in_threadpool

from api.models import Operation
from api.orchestrator import (
    SCHEDULED_CLEANUP,
    TERMINAL,
    Orchestrator,
    OrchestratorError,
    RunNotFound,
    RunState,
)
from storage import locks
from storage import operations as records
from storage.locations import DataStore
from storage.operations import OperationRecord, utcnow

NEVER_STARTED = timedelta(minutes=2)  # a pending row without a flow run: its start crashed


def load_record(store: DataStore, operation_id: uuid.UUID) -> OperationRecord | None:
    """The record as it stands: an apply or rollback whose run ended unfinished reads
    `interrupted` (storage.locks.reconcile: nobody holds its lock any more)."""
    if not records.exists(store, str(operation_id)):
        return None
    return locks.reconcile(store, records.load(store, str(operation_id)))


def load_records(store: DataStore, ops: Sequence[Operation]) -> list[OperationRecord | None]:
    return [load_record(store, op.manifest_id) for op in ops]


def fill(op: Operation, record: OperationRecord | None) -> None:
    """Copy what reads show of the record into the row (only what differs: `updated_at` moves
    with a change, api.models), and mark it confirmed now."""
    found: dict[str, Any] = {
        "state": record.status if record else None,
        "stage": record.stage if record else None,
        "stages": {k: v.model_dump() for k, v in record.stages.items()} if record else {},
        "summary": dict(record.summary) if record else {},
    }
    if record is not None and record.error and op.status == "failed":
        found["error"] = record.error  # the flow's own words over Prefect's
    for name, value in found.items():
        if getattr(op, name) != value:
            setattr(op, name, value)
    op.synced_at = utcnow()


def set_state(op: Operation, state: RunState | None) -> None:
    if state is not None and (state.status, state.message) != (op.status, op.error):
        op.status, op.error = state.status, state.message


async def run_state(
    orchestrator: Orchestrator, op: Operation, record: OperationRecord | None
) -> RunState | None:
    """Where the row's run stands, from Prefect and the record; None: keep the cached status."""
    if op.flow_run_id is None:
        if utcnow() - op.created_at > NEVER_STARTED and op.status == "pending":
            return RunState("failed", "the run was never started")
        return None
    try:
        state: RunState | None = await orchestrator.state(op.flow_run_id)
    except RunNotFound as exc:
        return lost(record, str(exc))
    except OrchestratorError:
        state = None  # keep the cached status; /api/v1/status reports Prefect's health
    ended_unfinished = (
        record is not None
        and record.status == "interrupted"
        and record.flow_run_id == op.flow_run_id
    )
    if ended_unfinished and (state is None or state.status != "completed"):
        assert record is not None
        return RunState("interrupted", record.error)  # its run ended in the middle
    return state


def lost(record: OperationRecord | None, why: str) -> RunState | None:
    """Prefect no longer knows the run: nobody will finish it, unless it still holds its
    lock (then it is working, and reports when done)."""
    if record is not None and record.status in records.WORKING:
        return None
    return RunState("interrupted", f"{why}; apply or roll back the operation again")


async def confirm(
    session: AsyncSession,
    orchestrator: Orchestrator,
    store: DataStore,
    ops: Sequence[Operation],
    commit: bool = True,
) -> None:
    """Bring the rows up to date: Prefect's state of their runs (unfinished rows only) and
    their records (one read each, off the event loop); then commit, unless told not to.

    A scheduled run that ended without making an operation (its schedule's previous run was
    still going: Prefect's `Skipped`) has no record: its row goes."""
    if not ops:
        return
    found = await run_in_threadpool(load_records, store, ops)
    live = [(op, rec) for op, rec in zip(ops, found, strict=True) if op.status not in TERMINAL]
    states = await asyncio.gather(*(run_state(orchestrator, op, rec) for op, rec in live))
    for (op, _), state in zip(live, states, strict=True):
        set_state(op, state)
    for op, record in zip(ops, found, strict=True):
        if record is None and op.deployment == SCHEDULED_CLEANUP and op.status == "completed":
            await session.delete(op)
            continue
        fill(op, record)
        if op.source_operation_id is not None:  # a rollback: its record is the undone one's
            undone = await session.get(Operation, op.source_operation_id)
            if undone is not None:
                fill(undone, record)
    if commit:
        await session.commit()
