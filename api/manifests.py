"""Reads of an operation's Parquet manifests (DuckDB, through storage.queries), off the loop.

Pages are bounded (api.deps.MAX_PAGE) and ordered by a unique key, so paging is stable.
An operation whose stage has not written its shards yet gets 409 with its status.
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from api.errors import Conflict
from api.models import Operation
from api.schemas import (
    DuplicateGroupPublic,
    DuplicatesPublic,
    FilePublic,
    FilesPublic,
    PlanItemPublic,
    PlanPublic,
    ReportPublic,
)
from storage import manifests, queries
from storage import operations as records
from storage.locations import DataStore
from storage.operations import OperationRecord


def text(path: bytes | None) -> str | None:
    """Display text of a byte path; non-UTF-8 bytes become \\xNN escapes."""
    return None if path is None else path.decode("utf-8", "backslashreplace")


def _ready(store: DataStore, op: Operation, *stages: str) -> tuple[str, OperationRecord]:
    operation_id = str(op.manifest_id)
    if not records.exists(store, operation_id):
        raise Conflict(f"operation {op.id} has no {stages[0]} yet (status: {op.status})")
    record = records.load(store, operation_id)
    op_dir = store.operation_dir(operation_id)
    for stage in stages:
        if not queries.has_shards(store, op_dir, stage):
            raise Conflict(f"operation {op.id} has no {stage} yet (status: {record.status})")
    return op_dir, record


def _plan(
    store: DataStore,
    op: Operation,
    action: str | None,
    limit: int,
    offset: int,
    outcome: str | None = None,
) -> PlanPublic:
    op_dir, _ = _ready(store, op, "plan")
    rows, total = queries.plan_rows(store, op_dir, action, limit, offset, outcome)
    paths = queries.PLAN_PATHS
    items = [PlanItemPublic(**{**r, **{k: text(r[k]) for k in paths}}) for r in rows]
    return PlanPublic(data=items, count=total)


def _duplicates(store: DataStore, op: Operation, limit: int, offset: int) -> DuplicatesPublic:
    op_dir, record = _ready(store, op, "scan")
    if not queries.has_shards(store, op_dir, "hash"):
        timing = record.stages.get("hash")
        if timing is None or timing.seconds is None:
            raise Conflict(f"operation {op.id} has no hashes yet (status: {record.status})")
        return DuplicatesPublic(data=[], count=0)  # hashed, and no two files shared a size
    rows, total = queries.duplicate_groups(
        store, op_dir, record.options.include_empty, limit, offset
    )
    groups = [
        DuplicateGroupPublic(
            digest=r["digest"],
            size=r["size"],
            copies=r["copies"],
            wasted_bytes=r["wasted_bytes"],
            paths=r["paths_text"],
        )
        for r in rows
    ]
    return DuplicatesPublic(data=groups, count=total)


def _files(
    store: DataStore, op: Operation, filters: dict[str, Any], limit: int, offset: int
) -> FilesPublic:
    op_dir, _ = _ready(store, op, "scan", "classify")
    rows, total = queries.file_rows(store, op_dir, **filters, limit=limit, offset=offset)
    files = [FilePublic(**{**r, "path": text(r["path"])}) for r in rows]
    return FilesPublic(data=files, count=total)


def _report(store: DataStore, op: Operation) -> ReportPublic:
    operation_id = str(op.manifest_id)
    record = records.load(store, operation_id) if records.exists(store, operation_id) else None
    op_dir = store.operation_dir(operation_id)
    built = manifests.read_report(store, op_dir) if record is not None else None
    if record is None or built is None:
        shown = record.status if record else op.status
        raise Conflict(f"operation {op.id} has no report yet (status: {shown})")
    built["apply"] = record.summary.get("apply")
    built["rollback"] = record.summary.get("rollback")
    return ReportPublic.model_validate(built)


async def plan(
    store: DataStore,
    op: Operation,
    action: str | None,
    limit: int,
    offset: int,
    outcome: str | None = None,
) -> PlanPublic:
    return await run_in_threadpool(_plan, store, op, action, limit, offset, outcome)


async def duplicates(store: DataStore, op: Operation, limit: int, offset: int) -> DuplicatesPublic:
    return await run_in_threadpool(_duplicates, store, op, limit, offset)


async def files(
    store: DataStore, op: Operation, filters: dict[str, Any], limit: int, offset: int
) -> FilesPublic:
    return await run_in_threadpool(_files, store, op, filters, limit, offset)


async def report(store: DataStore, op: Operation) -> ReportPublic:
    return await run_in_threadpool(_report, store, op)
