"""A fake orchestrator (the interface of api.orchestrator.Orchestrator) and the manifests the
flows would have written, synthesized with the storage schemas.

The fake "runs" a deployment by doing to the data folder what the real flow does to it, in
outline: organize writes a planned (or applied) operation with its manifests and report,
apply-plan marks it applied, rollback marks it rolled back.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pyarrow as pa

from api.orchestrator import (
    APPLY_PLAN,
    ORGANIZE,
    ROLLBACK,
    OrchestratorError,
    RunInfo,
    RunNotFound,
    RunState,
    RunStatus,
    ScheduleInfo,
    ScheduleSpec,
)
from storage import manifests, operations
from storage.locations import DataStore
from storage.operations import OperationRecord, PlanOptions, StageTiming

# (path, size, category, ext, year, digest): two copies of one photo, and a name that is not UTF-8.
FILES: list[tuple[bytes, int, str, str, int | None, bytes | None]] = [
    (b"a/photo.jpg", 300, "images", "jpg", 2019, b"\x01" * 32),
    (b"b/photo copy.jpg", 300, "images", "jpg", 2019, b"\x01" * 32),
    (b"doc.pdf", 1000, "documents", "pdf", 2021, None),
    (b"notes.txt", 10, "documents", "txt", 2020, None),
    (b"caf\xe9.bin", 50, "other", "bin", None, None),
]
MOVES = 4  # every file but the second photo (a duplicate, kept in place under `report`)


def _table(schema: pa.Schema, rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def write_manifests(store: DataStore, op_dir: str) -> None:
    scan, classify, hashed, plan = [], [], [], []
    for ino, (path, size, category, ext, year, digest) in enumerate(FILES, start=1):
        text = path.decode("utf-8", "backslashreplace")
        scan.append(
            {
                "path": path,
                "path_text": text,
                "kind": "file",
                "size": size,
                "mtime_ns": ino,
                "dev": 1,
                "ino": ino,
                "nlink": 1,
                "mode": 0o100644,
            }
        )
        date = datetime(year, 1, 2) if year else None
        classify.append(
            {
                "path": path,
                "category": category,
                "ext": ext,
                "date": date,
                "date_source": "mtime" if year else None,
                "year": year,
                "month": 1 if year else None,
            }
        )
        if digest is not None:
            hashed.append({"dev": 1, "ino": ino, "size": size, "digest": digest, "cached": False})
        is_copy = path == b"b/photo copy.jpg"
        dst = None if is_copy else f"{category.title()}/{year or 'unknown'}/".encode() + path
        plan.append(
            {
                "src": path,
                "dst": dst,
                "action": "keep" if is_copy else "move",
                "reason": "duplicate" if is_copy else "layout",
                "size": size,
                "mtime_ns": ino,
                "dev": 1,
                "ino": ino,
                "category": category,
                "year": year,
                "digest": digest,
            }
        )
    for stage, schema, rows in (
        ("scan", manifests.SCAN, scan),
        ("classify", manifests.CLASSIFY, classify),
        ("hash", manifests.HASH, hashed),
        ("plan", manifests.PLAN, plan),
    ):
        manifests.write_table(store, manifests.shard_path(op_dir, stage, 0), _table(schema, rows))


def report(record: OperationRecord) -> dict[str, Any]:
    return {
        "operation_id": record.id,
        "root": record.root,
        "dry_run": record.dry_run,
        "options": record.options.model_dump(),
        "files": len(FILES),
        "bytes": sum(f[1] for f in FILES),
        "entries": len(FILES),
        "by_category": {"images": {"files": 2, "bytes": 600}},
        "by_year": {"2019": {"files": 2, "bytes": 600}},
        "duplicates": {"groups": 1, "files": 2, "wasted_bytes": 300, "top_groups": []},
        "plan": {
            "moves": MOVES,
            "quarantine": 0,
            "hardlink": 0,
            "unchanged": 1,
            "skipped": 0,
            "conflicts": 0,
        },
        "errors": {"count": 0, "items": []},
        "stages": {},
    }


def write_operation(
    store: DataStore,
    operation_id: str,
    root: str,
    options: dict[str, Any],
    dry_run: bool,
    real_plan: bool = False,
) -> OperationRecord:
    record = OperationRecord(
        id=operation_id, root=root, options=PlanOptions.model_validate(options), dry_run=dry_run
    )
    op_dir = store.operation_dir(operation_id)
    if real_plan:  # the organize stages themselves, on the root (no Prefect)
        from tests.apply_helpers import plan_tree

        plan_tree(store, operation_id, root, record.options)
    else:
        write_manifests(store, op_dir)
    for stage in ("scan", "classify", "prefix", "hash", "plan", "report"):
        record.stages[stage] = StageTiming(seconds=0.01, files=len(FILES))
    record.status = "planned" if dry_run else "applied"
    record.summary = {"files": len(FILES), "moves": MOVES}
    store.write_bytes(f"{op_dir}/report.json", json.dumps(report(record)).encode())
    operations.save(store, record)
    return record


class FakeOrchestrator:
    def __init__(self, store: DataStore) -> None:
        self.store = store
        self.runs: dict[str, RunState] = {}
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.cancelled: list[str] = []
        self.complete = True  # runs finish at once; False leaves them running
        self.begin: RunStatus = "running"  # what an unfinished run is when it starts
        self.down = False
        self.real_plan = False  # True: organize plans the real tree, not the synthesized FILES
        self.schedule_list: list[ScheduleInfo] = []
        self.scheduled: list[RunInfo] = []  # runs "the schedules started" (scheduled_runs)
        # Called when a test changes what a run is (finish): the app's keeper confirms the
        # rows then, as its sweep would (tests.api.conftest wires it).
        self.changed: Callable[[], None] = lambda: None

    async def start(self, deployment: str, parameters: dict[str, Any]) -> str:
        self._check()
        run_id = str(uuid.uuid4())
        self.started.append((deployment, parameters))
        self.runs[run_id] = RunState(self.begin)
        if self.complete:
            self.run(deployment, parameters)
            self.runs[run_id] = RunState("completed")
        return run_id

    def run(self, deployment: str, parameters: dict[str, Any]) -> None:
        operation_id = parameters["operation_id"]
        if deployment == ORGANIZE:
            write_operation(
                self.store,
                operation_id,
                parameters["root"],
                parameters["options"],
                parameters["dry_run"],
                self.real_plan,
            )
            return
        record = operations.load(self.store, operation_id)
        if deployment == APPLY_PLAN:
            record.status = "applied"
            record.summary["apply"] = {
                "done": MOVES,
                "changed": 0,
                "vanished": 0,
                "conflicts": 0,
                "unsafe": 0,
                "errors": 0,
            }
        elif deployment == ROLLBACK:
            record.status = "rolled_back"
            record.summary["rollback"] = {"undone": MOVES, "refused": 0}
        operations.save(self.store, record)

    async def state(self, flow_run_id: str) -> RunState:
        self._check()
        if flow_run_id not in self.runs:  # as PrefectOrchestrator: the server lost the run
            raise RunNotFound(f"Prefect has no flow run {flow_run_id}")
        return self.runs[flow_run_id]

    async def cancel(self, flow_run_id: str) -> None:
        self._check()
        self.cancelled.append(flow_run_id)
        self.runs[flow_run_id] = RunState("cancelled")

    async def version(self) -> str:
        self._check()
        return "fake"

    # schedules (api.orchestrator.Scheduler), kept in memory
    async def add_schedule(self, spec: ScheduleSpec) -> ScheduleInfo:
        self._check()
        info = ScheduleInfo(
            id=str(uuid.uuid4()),
            slug=spec.slug,
            parameters=spec.parameters,
            cron=spec.cron,
            interval_seconds=spec.interval_seconds,
            timezone=spec.timezone,
            active=spec.active,
        )
        self.schedule_list.append(info)
        return info

    async def schedules(self) -> list[ScheduleInfo]:
        self._check()
        return list(self.schedule_list)

    async def remove_schedule(self, schedule_id: str) -> None:
        self._check()
        self.schedule_list = [s for s in self.schedule_list if s.id != schedule_id]

    async def pause_schedule(self, schedule_id: str) -> None:
        self._check()
        self.schedule_list = [
            dataclasses.replace(s, active=False) if s.id == schedule_id else s
            for s in self.schedule_list
        ]

    def finish(self, status: str = "completed", message: str | None = None) -> None:
        """End every unfinished run, doing its work first when it completes."""
        for run_id, state in list(self.runs.items()):
            if state.status in ("pending", "running"):
                if status == "completed":
                    index = list(self.runs).index(run_id)
                    self.run(*self.started[index])
                self.runs[run_id] = RunState(status, message)  # type: ignore[arg-type]
        self.changed()

    async def scheduled_runs(self, flow_run_id: str | None = None) -> list[RunInfo]:
        self._check()
        found = [dataclasses.replace(r, state=self.runs[r.flow_run_id]) for r in self.scheduled]
        return [r for r in found if flow_run_id in (None, r.flow_run_id)]

    def _check(self) -> None:
        if self.down:
            raise OrchestratorError("Prefect is not reachable: connection refused")
