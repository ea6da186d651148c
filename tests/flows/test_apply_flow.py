"""The apply-plan and rollback flows, organize without --dry-run, and the `fileorg apply` and
`fileorg rollback` commands, under the session's Prefect server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flows.apply import APPLY_KEYS, apply_plan_flow, rollback_flow
from flows.organize import organize_flow
from storage import manifests, operations
from storage.journal import Journal, apply_journal
from storage.locations import DataStore
from storage.operations import OperationRecord, PlanOptions
from tasks.apply import engine
from tasks.apply.items import items_from_plan
from tasks.apply.local import LocalMover
from tests.apply_helpers import apply_all, contents, differences, plan_tree, rollback_all
from tests.trees import make_nasty_tree, make_unreadable, outside_dir, snapshot

FILEORG = Path(sys.executable).parent / "fileorg"
STAMP = 1_555_083_000 * 10**9


def small_tree(root: Path) -> None:
    """Documents in nested folders, one duplicated."""
    files = {
        "inbox/a.txt": b"alpha",
        "inbox/b.txt": b"bravo",
        "inbox/deeper/c.txt": b"charlie",
        "old/copy of a.txt": b"alpha",
        "d.txt": b"delta",
    }
    for i, (rel, content) in enumerate(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, ns=(STAMP + i, STAMP + i))


def dry_run(root: Path, **options: Any) -> str:
    operation_id = str(uuid.uuid4())
    organize_flow(operation_id=operation_id, root=str(root), options=PlanOptions(**options))
    return operation_id


def record(data_dir: Path, operation_id: str) -> OperationRecord:
    return operations.load(DataStore(str(data_dir)), operation_id)


def expected_apply(done: int, **skipped: int) -> dict[str, int]:
    return {key: skipped.get(key, done if key == "done" else 0) for key in APPLY_KEYS}


def test_organize_without_dry_run_applies_and_rollback_undoes_it(
    tmp_path: Path, data_dir: Path
) -> None:
    root = tmp_path / "root"
    make_nasty_tree(root)
    make_unreadable(root)
    before, outside_before = snapshot(root), snapshot(outside_dir(root))
    operation_id = str(uuid.uuid4())

    report = organize_flow(
        operation_id=operation_id,
        root=str(root),
        options=PlanOptions(duplicates="hardlink"),
        dry_run=False,
    )
    applied = record(data_dir, operation_id)
    during = snapshot(root)
    result = rollback_flow(operation_id=operation_id)
    rolled_back = record(data_dir, operation_id)

    planned = report["plan"]["moves"] + report["plan"]["hardlink"]
    assert report["apply"] == expected_apply(planned)
    assert applied.status == "applied"
    assert applied.summary["apply"] == report["apply"]
    assert len(differences(before, during)) > planned
    assert result["undone"] == planned
    assert result["refused"] == 0
    assert rolled_back.status == "rolled_back"
    assert rolled_back.summary["rollback"] == result
    assert differences(before, snapshot(root)) == []
    assert snapshot(outside_dir(root)) == outside_before


def test_apply_plan_flow_applies_a_dry_run_and_a_second_rollback_does_nothing(
    tmp_path: Path, data_dir: Path
) -> None:
    root = tmp_path / "root"
    small_tree(root)
    before = snapshot(root)
    operation_id = dry_run(root, duplicates="quarantine", mode="category")
    assert snapshot(root) == before  # the dry run changed nothing
    assert record(data_dir, operation_id).status == "planned"

    summary = apply_plan_flow(operation_id=operation_id)
    status = record(data_dir, operation_id).status
    during = snapshot(root)
    first = rollback_flow(operation_id=operation_id)
    after_first = snapshot(root)
    second = rollback_flow(operation_id=operation_id)

    assert summary["apply"] == expected_apply(5)
    assert status == "applied"
    assert during[b".duplicates/old/copy of a.txt"].ino == before[b"old/copy of a.txt"].ino
    assert sorted(p for p in during if p.startswith(b"Documents/")) == [
        b"Documents/a.txt",
        b"Documents/b.txt",
        b"Documents/c.txt",
        b"Documents/d.txt",
    ]
    assert first["undone"] == 5
    assert differences(before, after_first) == []
    assert second == {"undone": 0, "refused": 0, "already_rolled_back": True}
    assert snapshot(root) == after_first
    assert record(data_dir, operation_id).status == "rolled_back"
    assert record(data_dir, operation_id).summary["rollback"] == first


def test_a_file_changed_after_the_dry_run_makes_the_apply_partial(
    tmp_path: Path, data_dir: Path
) -> None:
    root = tmp_path / "root"
    small_tree(root)
    operation_id = dry_run(root, mode="category")
    (root / "inbox" / "b.txt").write_bytes(b"edited")
    (root / "d.txt").unlink()
    before = snapshot(root)

    summary = apply_plan_flow(operation_id=operation_id)
    partial = record(data_dir, operation_id)
    rollback_flow(operation_id=operation_id)

    assert summary["apply"] == expected_apply(3, changed=1, vanished=1)
    assert partial.status == "partial"
    assert (root / "inbox" / "b.txt").read_bytes() == b"edited"
    assert record(data_dir, operation_id).status == "rolled_back"
    assert differences(before, snapshot(root)) == []


def test_a_blocked_rollback_is_incomplete_until_run_again(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "root"
    small_tree(root)
    before = snapshot(root)
    operation_id = str(uuid.uuid4())
    organize_flow(
        operation_id=operation_id,
        root=str(root),
        options=PlanOptions(mode="category"),
        dry_run=False,
    )
    (root / "inbox").mkdir(exist_ok=True)  # apply removed the folder it emptied
    (root / "inbox" / "b.txt").write_bytes(b"a newcomer")

    blocked = rollback_flow(operation_id=operation_id)
    incomplete = record(data_dir, operation_id).status
    (root / "inbox" / "b.txt").unlink()
    finished = rollback_flow(operation_id=operation_id)

    assert (blocked["undone"], blocked["refused"], blocked["refused_conflicts"]) == (4, 1, 1)
    assert incomplete == "rollback_incomplete"
    assert (finished["undone"], finished["refused"]) == (5, 0)
    assert record(data_dir, operation_id).status == "rolled_back"
    assert differences(before, snapshot(root)) == []


def test_a_rollback_names_each_folder_it_could_not_put_back_and_why(
    tmp_path: Path, data_dir: Path
) -> None:
    """Documents/ (apply made it) holds a newcomer: kept; inbox/deeper/ (apply emptied and
    removed it) is a file now: not made again, and its c.txt stays in Documents/. Silent
    before: no folder named, and no count of the kept one."""
    root = tmp_path / "root"
    small_tree(root)
    operation_id = str(uuid.uuid4())
    organize_flow(
        operation_id=operation_id,
        root=str(root),
        options=PlanOptions(mode="category"),
        dry_run=False,
    )
    (root / "Documents" / "new.txt").write_bytes(b"written after apply")
    (root / "inbox").mkdir()
    (root / "inbox" / "deeper").write_bytes(b"a file where a folder was")

    result = rollback_flow(operation_id=operation_id)

    assert (result["folders_kept"], result["refused_folders_taken"]) == (1, 1)
    assert result["folders_not_done"] == [
        {"path": "inbox/deeper", "reason": "not made again: a file has its name"},
        {"path": "Documents", "reason": "not empty: it holds c.txt, new.txt"},
    ]
    assert record(data_dir, operation_id).summary["rollback"] == result
    assert (root / "Documents" / "new.txt").read_bytes() == b"written after apply"


def interrupted(data_dir: Path, root: Path) -> str:
    """A dry run whose apply died: two moves confirmed, a third announced and carried out
    but not confirmed, the rest not started."""
    operation_id = dry_run(root, mode="category")
    store = DataStore(str(data_dir))
    record = operations.load(store, operation_id)
    record.status = "applying"
    operations.save(store, record)
    op_dir = store.operation_dir(operation_id)
    rows = manifests.read_table(store, manifests.shard_path(op_dir, "plan", 0)).to_pylist()
    items = items_from_plan(rows, "move", 0, {})
    journal = apply_journal(store, op_dir, "move", 0)
    engine.carry_out(LocalMover(os.fsencode(root)), items[:2], journal)
    with Journal(journal) as announced:
        announced.add(items[2].intent())
    (root / os.fsdecode(items[2].dst)).parent.mkdir(parents=True, exist_ok=True)
    os.rename(root / os.fsdecode(items[2].src), root / os.fsdecode(items[2].dst))
    return operation_id


def test_apply_plan_flow_finishes_an_interrupted_apply(tmp_path: Path, data_dir: Path) -> None:
    root = tmp_path / "root"
    small_tree(root)
    operation_id = interrupted(data_dir, root)

    summary = apply_plan_flow(operation_id=operation_id)

    assert summary["apply"] == expected_apply(5)
    assert record(data_dir, operation_id).status == "applied"
    expected_documents = ["a.txt", "b.txt", "c.txt", "copy of a.txt", "d.txt"]
    assert sorted(os.listdir(root / "Documents")) == expected_documents


def test_rollback_flow_undoes_an_interrupted_apply(tmp_path: Path, data_dir: Path) -> None:
    """Including the move the journal announced but never confirmed."""
    root = tmp_path / "root"
    small_tree(root)
    before = snapshot(root)
    operation_id = interrupted(data_dir, root)

    result = rollback_flow(operation_id=operation_id)

    assert (result["undone"], result["refused"]) == (3, 0)
    assert record(data_dir, operation_id).status == "rolled_back"
    assert differences(before, snapshot(root)) == []


# --- the command line: `fileorg apply`, `fileorg rollback`, `fileorg organize` ---------------


@dataclass
class Setup:
    """An operation in some state, what the command is, and the state to compare after."""

    argv: list[str]
    root: Path
    record_path: Path
    snapshot: dict[bytes, Any] | None = None
    record: bytes = b""

    def freeze(self) -> None:
        self.snapshot = snapshot(self.root) if self.root.exists() else None
        self.record = self.record_path.read_bytes() if self.record_path.exists() else b""

    def unchanged(self) -> bool:
        now = snapshot(self.root) if self.root.exists() else None
        record = self.record_path.read_bytes() if self.record_path.exists() else b""
        return now == self.snapshot and record == self.record


def planned(store: DataStore, base: Path, status: str = "planned", dry: bool = True) -> str:
    """A small tree planned with the plain stage functions, recorded in the given status."""
    root = base / "root"
    small_tree(root)
    operation_id = str(uuid.uuid4())
    options = PlanOptions(mode="category")
    plan_tree(store, operation_id, root, options)
    operations.save(
        store,
        OperationRecord(
            id=operation_id, root=str(root), options=options, dry_run=dry, status=status
        ),
    )
    return operation_id


def _unknown(store: DataStore, base: Path) -> list[str]:
    return ["apply", str(uuid.uuid4())]


def _not_an_id(store: DataStore, base: Path) -> list[str]:
    return ["rollback", "../../etc"]


def _failed_dry_run(store: DataStore, base: Path) -> list[str]:
    return ["apply", planned(store, base, status="failed")]


def _applied(store: DataStore, base: Path) -> list[str]:
    operation_id = planned(store, base)
    apply_all(store, store.operation_dir(operation_id), base / "root")
    record = operations.load(store, operation_id)
    record.status = "applied"
    operations.save(store, record)
    return ["apply", operation_id]


def _rolled_back(store: DataStore, base: Path) -> list[str]:
    return ["apply", planned(store, base, status="rolled_back")]


def _never_applied(store: DataStore, base: Path) -> list[str]:
    return ["rollback", planned(store, base)]


def _root_gone(store: DataStore, base: Path) -> list[str]:
    operation_id = planned(store, base)
    shutil.rmtree(base / "root")
    return ["apply", operation_id]


BAD: dict[str, tuple[Callable[[DataStore, Path], list[str]], str]] = {
    "unknown id": (_unknown, "no operation with id"),
    "not an id": (_not_an_id, "no operation with id"),
    "apply a failed dry run": (_failed_dry_run, "not a finished dry run"),
    "apply twice": (_applied, "already applied"),
    "apply after rollback": (_rolled_back, "rolled back"),
    "rollback never applied": (_never_applied, "never applied"),
    "plan whose root has gone": (_root_gone, "does not exist"),
}


@dataclass
class Ran:
    setup: Setup
    result: subprocess.CompletedProcess[bytes]


@pytest.fixture(scope="module")
def cli_runs(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: str
) -> Iterator[dict[str, Ran]]:
    """Every bad command, and a second rollback, run side by side (each pays a second or two
    of imports). The operations are made with the plain functions, in the states the flows
    leave them in."""
    data = tmp_path_factory.mktemp("cli-data")
    store = DataStore(str(data))
    env = {k: v for k, v in os.environ.items() if k != "FILEORG_DEBUG"}
    env.update(FILEORG_DATA_URL=str(data), PREFECT_API_URL=prefect_server)
    setups: dict[str, Setup] = {}
    for case, (make, _) in BAD.items():
        base = tmp_path_factory.mktemp("bad")
        argv = make(store, base)
        record_path = Path(store.base) / "operations" / argv[1] / "operation.json"
        setups[case] = Setup(argv, base / "root", record_path)
    twice = tmp_path_factory.mktemp("twice")
    operation_id = planned(store, twice)
    op_dir = store.operation_dir(operation_id)
    apply_all(store, op_dir, twice / "root")
    rollback_all(store, op_dir, twice / "root")
    rolled_back = operations.load(store, operation_id)
    rolled_back.status = "rolled_back"
    operations.save(store, rolled_back)
    setups["rollback twice"] = Setup(
        ["rollback", operation_id],
        twice / "root",
        Path(operations.record_path(store, operation_id)),
    )
    for setup in setups.values():
        setup.freeze()

    def run(setup: Setup) -> Ran:
        result = subprocess.run(
            [FILEORG, *setup.argv],
            env=env,
            stdin=subprocess.DEVNULL,  # a script: never the terminal pytest may run in
            capture_output=True,
            timeout=180,
        )
        return Ran(setup, result)

    with ThreadPoolExecutor(max_workers=len(setups)) as pool:
        yield dict(zip(setups, pool.map(run, setups.values()), strict=True))


@pytest.mark.parametrize("case", list(BAD))
def test_bad_apply_or_rollback_is_one_line_status_2_and_touches_nothing(
    cli_runs: dict[str, Ran], case: str
) -> None:
    ran = cli_runs[case]
    stderr = ran.result.stderr.decode(errors="replace")
    expected_words = BAD[case][1]

    assert ran.result.returncode == 2, stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert stderr.startswith("error: ")
    assert expected_words in stderr
    assert "Traceback" not in stderr
    assert ran.setup.unchanged()


def test_a_second_rollback_from_the_cli_is_refused_and_harmless(cli_runs: dict[str, Ran]) -> None:
    """Repeating a finished rollback is refused as the API refuses it (409), in one line."""
    ran = cli_runs["rollback twice"]
    stderr = ran.result.stderr.decode(errors="replace")

    assert ran.result.returncode == 2, stderr
    assert len(stderr.splitlines()) == 1
    assert "already rolled back: nothing to undo" in stderr
    assert ran.setup.unchanged()


def test_cli_organize_apply_quarantines_and_rollback_undoes_it(
    tmp_path: Path, data_dir: Path
) -> None:
    root = tmp_path / "root"
    small_tree(root)
    before = snapshot(root)
    env = {**os.environ, "FILEORG_DATA_URL": str(data_dir)}

    organized = subprocess.run(
        [FILEORG, "organize", root, "--apply", "--duplicates", "quarantine", "--json"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=180,
    )
    document = json.loads(organized.stdout)
    during = snapshot(root)
    undone = subprocess.run(
        [FILEORG, "rollback", document["operation_id"], "--json"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=180,
    )

    assert organized.returncode == 0, organized.stderr.decode(errors="replace")
    assert document["status"] == "applied"
    assert document["apply"]["done"] == (
        document["report"]["plan"]["moves"] + document["report"]["plan"]["quarantine"]
    )
    assert contents(during) == contents(before)
    assert any(p.startswith(b".duplicates/") for p in during)
    assert undone.returncode == 0, undone.stderr.decode(errors="replace")
    assert json.loads(undone.stdout)["status"] == "rolled_back"
    assert differences(before, snapshot(root)) == []
