"""The apply-plan and rollback flows: orchestration over tasks.apply, one task per shard.

Status rules (storage.operations: bad input gets one clear line, and nothing is touched):
apply needs a finished dry run (`planned`), or an interrupted apply or organize to finish;
rollback needs something applied; rolling back twice does nothing.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from prefect import flow

from flows.authorize import authorize, covered
from flows.organize import organize_flow
from flows.progress_artifact import progress_artifact
from flows.progress_events import progress_events
from flows.runs import APPLY_KEYS as APPLY_KEYS
from flows.runs import changing, guarded, run_apply, run_name
from storage import operations
from storage.journal import applied_journals
from storage.locations import DataStore
from storage.operations import OperationRecord, check_can_roll_back
from storage.paths import to_param
from storage.settings import get_settings
from tasks.apply import stage as apply
from tasks.apply.dirs import Kept
from tasks.backends import backend_for
from tasks.progress import tracker
from tasks.stages import rollback_task

FOLDERS_LISTED = 100  # named in the result (kept in the record); all are counted
ALREADY_ROLLED_BACK = {"undone": 0, "refused": 0, "already_rolled_back": True}


def apply_run_name() -> str:
    return run_name("apply")


def rollback_run_name() -> str:
    return run_name("rollback")


@flow(name="apply-plan", flow_run_name=apply_run_name)
def apply_plan_flow(operation_id: str, ticket: str | None = None) -> dict[str, Any]:
    store = DataStore(get_settings().data_url)
    authorize(store, ticket, {"kind": "apply", "op": operation_id})
    record = operations.load(store, operation_id)
    operations.check_can_apply(record)
    if not operations.applicable(record):
        with covered():  # this run's ticket covers the organize it finishes
            organize_flow(
                operation_id=record.id,
                root=to_param(record.root),
                options=record.options,
                dry_run=False,
            )
        return operations.load(store, record.id).summary
    with progress_artifact(record.id, ("apply",)), progress_events(record.id):
        run_apply(store, record)
    return record.summary


@flow(name="rollback", flow_run_name=rollback_run_name)
def rollback_flow(operation_id: str, ticket: str | None = None) -> dict[str, Any]:
    store = DataStore(get_settings().data_url)
    authorize(store, ticket, {"kind": "rollback", "op": operation_id})
    record = operations.load(store, operation_id)
    if not check_can_roll_back(store, record):
        return dict(ALREADY_ROLLED_BACK)
    guarded(store, record)
    with changing(store, record, "rollback"):
        if not check_can_roll_back(store, record):  # as the last run that held the lock left it
            return dict(ALREADY_ROLLED_BACK)
        return _roll_back(store, record)


def folders_not_done(folders: list[Kept]) -> list[dict[str, str]]:
    """The first FOLDERS_LISTED folders the rollback did not put back as they were, each with
    why: a folder apply made that is not empty (something new in it) stays, and said nothing
    before; one apply removed may be taken by a file now."""
    return [{"path": os.fsdecode(path), "reason": why} for path, why in folders[:FOLDERS_LISTED]]


def _roll_back(store: DataStore, record: OperationRecord) -> dict[str, Any]:
    op_dir = store.operation_dir(record.id)
    record.status = "rolling_back"
    record.stage = "rollback"
    operations.save(store, record)
    progress = tracker(record.id)
    progress.start("rollback", int(record.summary.get("apply", {}).get("done", 0)))
    totals: Counter[str] = Counter()
    backend = backend_for(record.root)  # the one choice of folder or bucket
    # Folders apply removed come back first: the files going back need them, with their mode.
    guarded(store, record)
    recreated, not_made = apply.recreate_folders(store, op_dir, backend.apply())
    if not_made:
        totals["folders_taken"] = len(not_made)
    with progress_artifact(record.id, ("rollback",)), progress_events(record.id):
        for journal in reversed(applied_journals(store, op_dir)):
            name = journal.rsplit("/", 1)[-1].removesuffix(".jsonl")
            guarded(store, record)
            totals.update(rollback_task(store, op_dir, record.id, backend, journal, name))
    removed, kept = apply.tidy_dirs(store, op_dir, backend.apply())
    progress.finish("rollback")
    refused = sum(v for k, v in totals.items() if k != "done")
    result = {
        "undone": totals.get("done", 0),
        "refused": refused,
        "folders_removed": removed,
        "folders_recreated": recreated,
        "folders_kept": len(kept),
        **{f"refused_{k}": v for k, v in totals.items() if k != "done"},
        "folders_not_done": folders_not_done([*not_made, *kept]),
    }
    record.status = "rolled_back" if refused == 0 else "rollback_incomplete"
    record.stage = None
    record.error = None  # an interruption this run finished is over
    record.summary["rollback"] = result
    operations.save(store, record)
    return result
