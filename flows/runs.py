"""What the organize flow and the apply-plan and rollback flows share: a run's name in the UI,
a stage's timing, the root guard, the lock held while files change, and the apply itself.

Its own module so that flows/organize.py (which ends with an apply when it is not a dry run)
and flows/apply.py (which finishes an interrupted organize) do not import each other:
apply.py imports organize.py, one way, and both import this.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from flows import prefect_costs
from flows.progress_events import current_flow_run_id
from storage import locks, operations
from storage.errors import RootError
from storage.journal import journal_dir
from storage.locations import DataStore
from storage.objects import is_object_url
from storage.operations import OperationRecord, StageTiming
from storage.paths import from_param
from storage.root_identity import RootChanged, check_identity
from storage.roots import check_root
from storage.settings import get_settings
from tasks.apply import stage as apply
from tasks.backends import backend_for
from tasks.progress import tracker
from tasks.stages import apply_task

APPLY_KEYS = ("done", "changed", "vanished", "conflicts", "unsafe", "errors")

prefect_costs.remove()  # before any flow of ours runs


def run_name(kind: str) -> str:
    """A flow run's name in the UI: the kind, the operation id and the root it works on."""
    from prefect.runtime import flow_run

    params = flow_run.parameters
    operation_id = params.get("operation_id") or str(flow_run.id)
    root = params.get("root")
    if root is None:  # apply and rollback take only the id: the root is in its record
        try:
            store = DataStore(get_settings().data_url)
            root = operations.load(store, operation_id).root
        except Exception:  # a name is a convenience; the run itself reports a missing record
            root = "?"
    shown = os.fsencode(from_param(str(root))).decode("utf-8", "backslashreplace")
    return f"{kind}-{operation_id} {shown}"


@contextmanager
def stage(store: DataStore, record: OperationRecord, name: str) -> Iterator[StageTiming]:
    """A stage's wall time (added to what an earlier run of it took), saved in the record."""
    timing = record.stages.setdefault(name, StageTiming())
    record.stage = name
    started = time.perf_counter()
    operations.save(store, record)
    yield timing
    timing.seconds = round((timing.seconds or 0) + time.perf_counter() - started, 3)
    tracker(record.id).finish(name)
    operations.save(store, record)


def guard_root(record: OperationRecord) -> None:
    """RootChanged (RootError) unless the record's root is still the folder it was authorized
    as: reached without a symlink on the way, with the same device and inode."""
    if is_object_url(record.root):
        check_root(record.root)  # the bucket is still there and readable
        return
    check_identity(record.root, record.root_identity)
    if check_root(record.root) != record.root:  # a link that appeared since the walk
        raise RootChanged(f"root {record.root} is no longer the folder that was authorized")


def guarded(store: DataStore, record: OperationRecord) -> None:
    """The root is still the folder that was authorized, or the refusal is recorded (the
    status stays, so the operation can go on once the folder is back) and raised."""
    try:
        guard_root(record)
    except RootError as exc:
        record.error = str(exc)
        operations.save(store, record)
        raise


@contextmanager
def changing(store: DataStore, record: OperationRecord, action: locks.Action) -> Iterator[None]:
    """Hold the operation's lock (and its root's) while this run changes files. `record` is
    read again once the lock is held: a run that held it before may have changed it."""
    with locks.held(store, record.id, record.root, action, current_flow_run_id()):
        fresh = operations.load(store, record.id)
        for name in type(record).model_fields:
            setattr(record, name, getattr(fresh, name))
        record.flow_run_id = current_flow_run_id()  # saved with `applying`: the API's clue
        yield


def run_apply(store: DataStore, record: OperationRecord) -> dict[str, int]:
    """Apply the plan of `record`; resumable. Returns the outcome counts. Busy when another
    run applies or rolls back this operation or an overlapping root."""
    with changing(store, record, "apply"):
        operations.check_can_apply(record)  # as the last run that held the lock left it
        return _run_apply(store, record)


def _run_apply(store: DataStore, record: OperationRecord) -> dict[str, int]:
    op_dir = store.operation_dir(record.id)
    journal_dir(store, op_dir)  # refuses a data folder without journals, first
    guarded(store, record)
    record.status = "applying"
    record.stage = "apply"
    operations.save(store, record)
    progress = tracker(record.id)
    progress.start(
        "apply",
        int(record.summary.get("moves", 0))
        + int(record.summary.get("quarantine", 0))
        + int(record.summary.get("hardlink", 0)),
    )
    totals: Counter[str] = Counter()
    backend = backend_for(record.root)  # the one choice of folder or bucket
    for phase in backend.apply().phases:
        for shard in range(apply.plan_shards(store, op_dir)):
            guarded(store, record)  # and again before every shard: a swap mid-apply stops it
            totals.update(apply_task(store, op_dir, record.id, backend, phase, shard))
            locks.pause_for_tests("shard")
    progress.finish("apply")
    if not record.options.keep_empty_folders:
        guarded(store, record)
        record.summary["folders_emptied"] = apply.remove_emptied(store, op_dir, backend.apply())
    counts = {k: totals.get(k, 0) for k in APPLY_KEYS}
    record.status = "applied" if counts["done"] == sum(counts.values()) else "partial"
    record.stage = None
    record.error = None  # an interruption this run finished is over
    record.summary["apply"] = counts
    operations.save(store, record)
    return counts
