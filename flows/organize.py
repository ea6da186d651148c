"""The organize flow: scan, classify and hash in shards, then plan and report.

Orchestration only: which tasks, in what order, on which shards. Every stage checkpoints its
own shards, so running the flow again with the same operation id resumes it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows.authorize import authorize
from flows.progress_artifact import progress_artifact
from flows.progress_events import progress_events
from flows.runs import guard_root, run_apply, run_name, stage
from storage import locks, manifests, operations
from storage.errors import OperationStateError, UserError
from storage.leave_alone import ScanRules, root_refusal
from storage.locations import DataStore
from storage.operations import OperationRecord, PlanOptions, check_options_for_root
from storage.paths import from_param
from storage.revocations import check_not_revoked
from storage.root_identity import Identity, RootChanged, identify
from storage.roots import check_root, home_folder, home_state
from storage.settings import get_settings
from tasks import pool, report
from tasks.backends import RootBackend, backend_for
from tasks.hashes.worklists import FULL, PREFIX
from tasks.plan.layout import parse_layout
from tasks.progress import tracker
from tasks.stages import (
    classify_task,
    hash_inputs_task,
    hash_task,
    listing_task,
    plan_task,
    report_task,
    scan_task,
)

STAGES = operations.PLAN_STAGES
# An interrupted plan's hint when nothing better is known (the CLI records the command it ran).
RESUME = "the same organize again with --id {id}"


def organize_run_name() -> str:
    return run_name("organize")


def open_operation(
    store: DataStore,
    operation_id: str,
    root: str,
    options: PlanOptions,
    dry_run: bool,
    identity: Identity | None = None,
    owner: str | None = None,
) -> OperationRecord:
    if operations.exists(store, operation_id):
        record = operations.load(store, operation_id)  # a resumed run keeps what it was asked
        operations.check_can_organize(record)
        if identity is not None and record.root_identity not in (None, identity):
            raise RootChanged(f"operation {record.id} was authorized for another folder")
        stopped = operations.stopped_rolling_back(record)
        if stopped:
            raise OperationStateError(stopped)
    else:
        record = OperationRecord(
            id=operation_id,
            root=root,
            root_identity=identity,
            options=options,
            dry_run=dry_run,
            owner=owner,
        )
    if not operations.applying(record):  # an interrupted apply resumes as an apply
        record.status = "running"
    record.error = None
    record.stages = {k: v for k, v in record.stages.items() if v.seconds is not None}
    operations.save(store, record)
    return record


class SettingsThreadPoolTaskRunner(ThreadPoolTaskRunner):  # type: ignore[type-arg]
    """Prefect's thread pool with as many threads as FILEORG_TASK_WORKERS says when the flow
    starts (not when this module is imported: settings are read once they are needed)."""

    def __init__(self, max_workers: int | None = None) -> None:
        super().__init__(max_workers=max_workers)
        self._explicit_workers = max_workers

    def __enter__(self) -> SettingsThreadPoolTaskRunner:
        if self._explicit_workers is None:
            self._max_workers = get_settings().task_workers
        super().__enter__()
        return self

    def duplicate(self) -> SettingsThreadPoolTaskRunner:
        return type(self)(max_workers=self._explicit_workers)


@flow(
    name="organize",
    flow_run_name=organize_run_name,
    task_runner=SettingsThreadPoolTaskRunner(),  # type: ignore[arg-type]
    validate_parameters=True,
)
def organize_flow(
    operation_id: str,
    root: str,
    options: PlanOptions | None = None,
    dry_run: bool = True,
    root_identity: list[int] | None = None,
    owner: str | None = None,
    authorized_at: str | None = None,
    ticket: str | None = None,
) -> dict[str, Any] | State[Any]:
    """`root_identity` is the root's [st_dev, st_ino] as the API authorized it (the root is
    then the API's canonical path, taken as given); without it (the CLI's own runs) the flow
    canonicalizes the root and fixes its identity itself. Either way it is checked before
    scan and again before apply (storage.root_identity). `owner` and `authorized_at` (the
    API's runs and schedules) name whose grant authorized the root and when: a run refuses a
    root whose grant was revoked since (storage.revocations). A run of a deployment must carry
    the API's `ticket` for exactly these parameters (flows.authorize)."""
    settings = get_settings()
    store = DataStore(settings.data_url)
    options = options or PlanOptions()
    asked: dict[str, Any] = {"root": root, "root_identity": root_identity, "dry_run": dry_run}
    asked["options"] = options.model_dump(mode="json")
    kind = {"kind": "organize", "op": operation_id} if operation_id else {"kind": "schedule"}
    claims = authorize(store, ticket, {**kind, **asked})
    if claims is not None:  # who and when, as the API signed them
        owner, authorized_at = claims.get("owner"), claims.get("at")
    grant = (owner, authorized_at)
    if operation_id:
        return _organize(store, operation_id, root, options, dry_run, root_identity, grant)
    # A scheduled run (scheduled-cleanup): a new operation per run, one run of a schedule at
    # a time (its ticket names the schedule; the CLI's in-process test runs have none).
    from prefect.runtime import flow_run

    with locks.schedule_slot(store, ticket or json.dumps(asked, sort_keys=True)) as free:
        if not free:
            return _skipped(
                f"the previous run of this schedule on {from_param(root)} is still going"
            )
        # Nobody asked for this run just now: while another run changes an overlapping tree,
        # its plan would describe a tree half moved, so it waits for the next firing instead.
        busy = locks.overlapping(store, from_param(root))
        if busy is not None:
            return _skipped(f"{busy.doing()}, which overlaps {from_param(root)}")
        run_id = str(flow_run.id)
        return _organize(store, run_id, root, options, dry_run, root_identity, grant)


def _skipped(reason: str) -> State[Any]:
    """The run of a schedule that found its previous run still going, or another run changing
    an overlapping root: no operation is made, and Prefect keeps the run as Skipped with the
    reason (the UI and the API show it)."""
    why = f"skipped: {reason}"
    get_run_logger().warning(why)
    return Completed(name="Skipped", message=why)


def _organize(
    store: DataStore,
    operation_id: str,
    root: str,
    options: PlanOptions,
    dry_run: bool,
    root_identity: list[int] | None,
    grant: tuple[str | None, str | None],
) -> dict[str, Any]:
    owner, authorized_at = grant
    settings = get_settings()
    parse_layout(options.mode, options.template)  # refuse a bad template before any work
    check_options_for_root(options, from_param(root))  # and hard links on a bucket
    if root_identity is None:
        root = check_root(from_param(root))
        root_identity = identify(root)
    else:  # refused below, once there is a record to say so in
        root = from_param(root)
    record = open_operation(store, operation_id, root, options, dry_run, root_identity, owner)
    stages = STAGES if record.dry_run else (*STAGES, "apply")

    def still_granted() -> None:
        if owner and authorized_at:
            check_not_revoked(store, owner, record.root, authorized_at)

    try:
        still_granted()
        guard_root(record)
        with progress_artifact(record.id, stages), progress_events(record.id):
            summary = _run_stages(store, record, settings.shard_rows)
            if not record.dry_run:
                still_granted()
                summary["apply"] = run_apply(store, record)
    except BaseException as exc:
        if not _ctrl_c(exc):
            record.status = "failed"
            record.error = str(exc) or type(exc).__name__
            operations.save(store, record)
            raise
        # Ctrl-C: interrupted, not failed (the CLI then records the exact command it prints)
        resume = RESUME.format(id=record.id)
        line = f"interrupted: nothing in {record.root} was changed; resume it: {resume}"
        if not operations.interrupt_planning(record, line):
            record.status, record.error = "failed", "KeyboardInterrupt"
        if not operations.planning_interrupted(operations.load(store, record.id)):
            operations.save(store, record)  # unless the CLI said it first, with its command
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise KeyboardInterrupt from exc  # what it is, whatever Prefect made of it
    return summary


def _ctrl_c(exc: BaseException | None) -> bool:
    """A Ctrl-C, or what Prefect's engine raised while handling one: a KeyboardInterrupt that
    lands in a task's engine before its task run exists makes the engine's crash handling
    raise `ValueError: Task run is not set` instead (prefect.task_engine, 3.9.1)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def _run_stages(store: DataStore, record: OperationRecord, shard_rows: int) -> dict[str, Any]:
    op_dir = store.operation_dir(record.id)
    progress = tracker(record.id)
    backend = backend_for(record.root)  # the one choice of folder or bucket, for every stage
    rules = _scan_rules(store, record, backend)
    _refuse_left_alone_root(record.root, rules)
    processes = backend.processes(get_settings().io_processes)
    with stage(store, record, "scan") as timing:
        progress.start("scan")
        scanned = scan_task(store, op_dir, record.id, backend, shard_rows, rules)
        timing.files, timing.bytes = scanned["files"], scanned["bytes"]
    guard_root(record)  # a root swapped during the scan: what was listed is not the root

    previous = operations.previous_on_root(store, record.root, record.id)
    prev_dir = store.operation_dir(previous.id) if previous else None
    with stage(store, record, "classify") as timing:
        progress.start("classify", scanned["files"])
        futures = classify_task.map(
            store, op_dir, record.id, range(scanned["shards"]), backend, processes, prev_dir
        )
        timing.files = sum(f.result()["files"] for f in futures)
    pool.release()  # nor through the prefix work list (DuckDB's): the hashing makes a new one
    for pass_name in (PREFIX, FULL):
        _hash_pass(store, record, backend, pass_name, prev_dir, processes)
    pool.release()  # nothing reads file content from here on: its workers' memory goes
    with stage(store, record, "plan") as timing:
        progress.start("plan")
        planned = plan_task(store, op_dir, record, shard_rows, backend, prev_dir)
        timing.files = planned["entries"]
        # the listing manifest is the plan's to page through: its build is counted with the
        # plan, where it was in no stage's seconds (~2 s of a 146k tree's warm run)
        listing_task(store, op_dir, record.options.include_empty)
    with stage(store, record, "report"):
        progress.start("report")
        built = report_task(store, op_dir, record)
    built["stages"] = {k: v.model_dump(mode="json") for k, v in record.stages.items()}
    manifests.write_report(store, op_dir, built)
    _planned(store, record, built)
    _publish_artifact(built)
    return built


def _refuse_left_alone_root(root: str, rules: ScanRules) -> None:
    """However the run was started (the CLI checks first; the API and schedules do not see
    tasks): a root in what a walk from higher up leaves alone is not organized."""
    refused = root_refusal(root, rules)
    if refused is not None:
        raise UserError(refused)


def _scan_rules(store: DataStore, record: OperationRecord, backend: RootBackend) -> ScanRules:
    """What the scan leaves alone: the options' rules, the data folder and Prefect's home,
    and in a whole home its program folders (storage.roots.home_state)."""
    sealed = backend.sealed(store, prefect_home()) + home_state(record.root, home_folder())
    options = record.options
    return ScanRules(options.include_hidden, tuple(options.exclude), tuple(sealed))


def _hash_pass(
    store: DataStore,
    record: OperationRecord,
    backend: RootBackend,
    pass_name: str,
    prev_dir: str | None,
    processes: int,
) -> None:
    settings = get_settings()
    op_dir = store.operation_dir(record.id)
    with stage(store, record, pass_name) as timing:
        shards = hash_inputs_task(
            store,
            op_dir,
            pass_name,
            prev_dir,
            settings.hash_shard_files,
            settings.hash_shard_bytes,
            backend,
        )
        tracker(record.id).start(pass_name)
        futures = hash_task.map(
            store, op_dir, record.id, pass_name, range(shards), backend, processes
        )
        results = [f.result() for f in futures]
        timing.files = sum(r["files"] for r in results)
        timing.bytes = sum(r["bytes_read"] for r in results)


def _planned(store: DataStore, record: OperationRecord, built: dict[str, Any]) -> None:
    """The record of a finished plan: its status and the report's headline figures."""
    if not operations.applying(record):
        record.status = "planned"
    record.stage = None
    record.summary = {
        "files": built["files"],
        "bytes": built["bytes"],
        "duplicate_groups": built["duplicates"]["groups"],
        "wasted_bytes": built["duplicates"]["wasted_bytes"],
        **built["plan"],
        "errors": built["errors"]["count"],
    }
    operations.save(store, record)


def prefect_home() -> list[tuple[bytes, str]]:
    """Prefect's home (PREFECT_HOME: its database, maybe live, and its WAL), never entered
    when it lies inside a folder root."""
    from prefect.settings import get_current_settings

    home = os.path.realpath(os.path.expanduser(str(get_current_settings().home)))
    return [(os.fsencode(home), "Prefect home, PREFECT_HOME")]


def _publish_artifact(built: dict[str, Any]) -> None:
    try:
        create_markdown_artifact(
            key=f"report-{built['operation_id']}",
            markdown=report.to_markdown(built),
            description="Organize report: summary and top duplicate groups",
        )
    except Exception as exc:  # an artifact is a view of report.json; never fail the run for it
        get_run_logger().warning("could not publish the report artifact: %s", exc)
