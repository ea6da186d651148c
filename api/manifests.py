"""Reads of an operation's Parquet manifests (DuckDB, through storage.queries), off the loop.

Pages are bounded (api.deps.MAX_PAGE) and ordered by a unique key, so paging is stable; a
page's `next_cursor` continues after its last row (storage.queries.keyset). Listings read the
operation's listing manifest once planning built it, its shards before; an operation whose
stage has not written its shards yet gets 409 with its status.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ListingPage:
    """A page of a listing: `limit` rows, `offset` rows in or after `cursor` (not both)."""

    limit: int
    offset: int
    cursor: str | None


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


def _op_dir(store: DataStore, op: Operation) -> str:
    return store.operation_dir(str(op.manifest_id))


def _plan(
    store: DataStore, op: Operation, page: ListingPage, action: str | None, outcome: str | None
) -> PlanPublic:
    done = queries.listing_built(store, _op_dir(store, op))
    if done is None or done.get("plan") is None:
        _ready(store, op, "plan")
    op_dir = _op_dir(store, op)
    got = queries.plan_page(
        store, op_dir, page.limit, page.offset, page.cursor, action=action, outcome=outcome
    )
    paths = queries.PLAN_PATHS
    items = [PlanItemPublic(**{**r, **{k: text(r[k]) for k in paths}}) for r in got.rows]
    return PlanPublic(data=items, count=got.count, next_cursor=got.next_cursor)


def _include_empty(store: DataStore, op: Operation) -> bool | None:
    """Whether empty files count as duplicates; None when nothing was hashed (no two files
    shared a size): no groups, none to list."""
    op_dir = _op_dir(store, op)
    done = queries.listing_built(store, op_dir)
    if done is not None:
        return bool(done["include_empty"])
    op_dir, record = _ready(store, op, "scan")
    if not queries.has_shards(store, op_dir, "hash"):
        timing = record.stages.get("hash")
        if timing is None or timing.seconds is None:
            raise Conflict(f"operation {op.id} has no hashes yet (status: {record.status})")
        return None
    return record.options.include_empty


def _duplicates(store: DataStore, op: Operation, page: ListingPage) -> DuplicatesPublic:
    include_empty = _include_empty(store, op)
    if include_empty is None:
        return DuplicatesPublic(data=[], count=0)
    got = queries.duplicates_page(
        store, _op_dir(store, op), page.limit, page.offset, page.cursor, include_empty=include_empty
    )
    groups = [
        DuplicateGroupPublic(
            digest=r["digest"],
            size=r["size"],
            copies=r["copies"],
            wasted_bytes=r["wasted_bytes"],
            paths=r["paths_text"],
        )
        for r in got.rows
    ]
    return DuplicatesPublic(data=groups, count=got.count, next_cursor=got.next_cursor)


def _files(
    store: DataStore, op: Operation, filters: dict[str, Any], page: ListingPage
) -> FilesPublic:
    done = queries.listing_built(store, _op_dir(store, op))
    if done is None or done.get("files") is None:
        _ready(store, op, "scan", "classify")
    got = queries.files_page(
        store, _op_dir(store, op), page.limit, page.offset, page.cursor, **filters
    )
    files = [FilePublic(**{**r, "path": text(r["path"])}) for r in got.rows]
    return FilesPublic(data=files, count=got.count, next_cursor=got.next_cursor)


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
    return ReportPublic.model_validate(shown_text(built))


def shown_text(value: Any) -> Any:
    """report.json's paths as the listings show them: a name that is not UTF-8 is stored in
    os.fsdecode's form (lone surrogates, which JSON cannot carry: the response was a 500 and
    a socket's `done` was never sent), shown with the same \\xNN escapes as `text`."""
    if isinstance(value, str):
        try:
            return os.fsencode(value).decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # a surrogate fsdecode never makes: escaped as it is
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {shown_text(k): shown_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown_text(v) for v in value]
    return value


async def plan(
    store: DataStore,
    op: Operation,
    page: ListingPage,
    action: str | None = None,
    outcome: str | None = None,
) -> PlanPublic:
    return await run_in_threadpool(_plan, store, op, page, action, outcome)


async def duplicates(store: DataStore, op: Operation, page: ListingPage) -> DuplicatesPublic:
    return await run_in_threadpool(_duplicates, store, op, page)


async def files(
    store: DataStore, op: Operation, filters: dict[str, Any], page: ListingPage
) -> FilesPublic:
    return await run_in_threadpool(_files, store, op, filters, page)


async def report(store: DataStore, op: Operation) -> ReportPublic:
    return await run_in_threadpool(_report, store, op)
