"""Prefect tasks: thin wrappers over the plain stage functions.

Each task works on a whole shard (never one file), retries with backoff, and finds its own
finished output on a retry or a re-run (the shard files are the checkpoint, so Prefect's
result cache, whose default key includes the run id, is switched off).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from storage import manifests, operations, queries
from storage.leave_alone import ScanRules
from storage.locations import DataStore
from storage.operations import OperationRecord
from tasks import report
from tasks.apply import stage as apply
from tasks.backends import RootBackend
from tasks.classify import stage as classify
from tasks.hashes import stage as hashes
from tasks.plan import stage as plan
from tasks.progress import tracker
from tasks.scan import stage as scan

RETRIES: dict[str, Any] = {
    "retries": 3,
    "retry_delay_seconds": [2, 5, 15],
    "cache_policy": NO_CACHE,
}


@task(name="scan", **RETRIES)
def scan_task(
    store: DataStore,
    op_dir: str,
    operation_id: str,
    backend: RootBackend,
    shard_rows: int,
    rules: ScanRules,
) -> dict[str, int]:
    progress = tracker(operation_id)
    return scan.scan_root(
        store,
        op_dir,
        backend,
        shard_rows,
        rules,
        on_flush=lambda files, nbytes: progress.advance("scan", files, nbytes),
    )


@task(name="classify", task_run_name="classify-{index}", **RETRIES)
def classify_task(
    store: DataStore,
    op_dir: str,
    operation_id: str,
    index: int,
    backend: RootBackend,
    processes: int,
    prev_dir: str | None,
) -> dict[str, int]:
    progress = tracker(operation_id)
    return classify.classify_shard(
        store,
        op_dir,
        index,
        backend,
        processes,
        prev_dir,
        on_chunk=lambda files, nbytes: progress.advance("classify", files, nbytes),
    )


@task(name="plan-hash-inputs", task_run_name="plan-{pass_name}-inputs", **RETRIES)
def hash_inputs_task(
    store: DataStore,
    op_dir: str,
    pass_name: str,
    prev_dir: str | None,
    shard_files: int,
    shard_bytes: int,
    backend: RootBackend,
) -> int:
    if pass_name == hashes.PREFIX:
        return hashes.plan_prefix_inputs(store, op_dir, prev_dir, shard_files, backend)
    return hashes.plan_full_inputs(store, op_dir, prev_dir, shard_files, shard_bytes, backend)


@task(name="hash", task_run_name="{pass_name}-{index}", **RETRIES)
def hash_task(
    store: DataStore,
    op_dir: str,
    operation_id: str,
    pass_name: str,
    index: int,
    backend: RootBackend,
    processes: int,
) -> dict[str, int]:
    progress = tracker(operation_id)
    return hashes.hash_shard(
        store,
        op_dir,
        pass_name,
        index,
        backend,
        processes,
        on_chunk=lambda files, nbytes: progress.advance(pass_name, files, nbytes),
    )


@task(name="plan", **RETRIES)
def plan_task(
    store: DataStore,
    op_dir: str,
    record: OperationRecord,
    shard_rows: int,
    backend: RootBackend,
    prev_dir: str | None = None,
) -> dict[str, Any]:
    operations.check_options_for_root(record.options, record.root)  # a resumed run is checked too
    return plan.plan_operation(store, op_dir, record.options, shard_rows, backend, prev_dir)


@task(name="listing", **RETRIES)
def listing_task(store: DataStore, op_dir: str, include_empty: bool) -> dict[str, Any]:
    """The listing manifest the API and the CLI page through (storage.queries.listing_manifest):
    copied from the operation whose plan this one reused, whose inputs it shares."""
    planned = manifests.done_info(store, op_dir, "plan") or {}
    return queries.build_listing(store, op_dir, include_empty, planned.get("reused_from"))


@task(name="report", **RETRIES)
def report_task(store: DataStore, op_dir: str, record: OperationRecord) -> dict[str, Any]:
    built = report.build_report(store, op_dir, record)
    manifests.write_report(store, op_dir, built)
    return built


@task(name="apply", task_run_name="apply-{phase}-{shard}", **RETRIES)
def apply_task(
    store: DataStore, op_dir: str, operation_id: str, backend: RootBackend, phase: str, shard: int
) -> dict[str, int]:
    progress = tracker(operation_id)
    counts = apply.apply_shard(
        store,
        op_dir,
        backend.apply(),
        phase,
        shard,
        on_batch=lambda c: progress.advance("apply", sum(c.values())),
    )
    return dict(counts)


@task(name="rollback", task_run_name="rollback-{name}", **RETRIES)
def rollback_task(
    store: DataStore,
    op_dir: str,
    operation_id: str,
    backend: RootBackend,
    journal: str,
    name: str,
) -> dict[str, int]:
    progress = tracker(operation_id)
    counts = apply.rollback_one(
        store,
        op_dir,
        backend.apply(),
        journal,
        on_batch=lambda c: progress.advance("rollback", sum(c.values())),
    )
    return dict(counts)
