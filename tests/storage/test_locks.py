"""storage.locks: one apply or rollback per operation and per overlapping root, and a lock that
dies with its process (kill -9 included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from storage import locks, operations
from storage.locations import DataStore
from tests.polling import until_created

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(data_dir: Path) -> DataStore:
    return DataStore(str(data_dir))


def test_the_same_operation_is_refused_with_one_line_naming_the_run(store: DataStore) -> None:
    with (
        locks.held(store, "op-a", "/t/mess2", "apply"),
        pytest.raises(locks.Busy) as refused,
        locks.held(store, "op-a", "/t/other", "rollback"),
    ):
        pass
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith("operation op-a is applying /t/mess2 (pid ")
    assert line.endswith("wait for it to finish")


@pytest.mark.parametrize("other", ["/t/mess2/Camera", "/t", "/t/mess2"])
def test_an_overlapping_root_is_refused(store: DataStore, other: str) -> None:
    refused = f"operation op-a is rolling back /t/mess2 .*{other}"
    with locks.held(store, "op-a", "/t/mess2", "rollback"):
        with pytest.raises(locks.Busy, match=refused), locks.held(store, "op-b", other, "apply"):
            pass
        with pytest.raises(locks.Busy):
            locks.refuse_busy(store, "op-b", other)


def test_disjoint_roots_run_side_by_side_and_locks_are_released(store: DataStore) -> None:
    with (
        locks.held(store, "op-a", "/t/mess2", "apply"),
        locks.held(store, "op-b", "/t/mess20", "apply"),  # a sibling, not a child
    ):
        assert {h.operation_id for h in locks.holders(store)} == {"op-a", "op-b"}
    assert locks.holders(store) == []
    with pytest.raises(RuntimeError), locks.held(store, "op-a", "/t/mess2", "apply"):
        raise RuntimeError("the run failed")
    assert locks.holders(store) == []  # released on any exit
    assert sorted(os.listdir(locks.lock_dir(store))) == [locks.REGISTRY]


def test_a_killed_holder_leaves_its_lock_free(store: DataStore, tmp_path: Path) -> None:
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from storage import locks; from storage.locations import DataStore; "
            f"locks.held(DataStore({store.url!r}), 'op-a', '/t/mess2', 'apply').__enter__()",
        ],
        cwd=REPO,
        env={**os.environ, locks.PAUSE_ENV: str(barrier), locks.PAUSE_AT_ENV: "locked"},
    )
    try:
        until_created(barrier / "locked", holder, 60)
        with pytest.raises(locks.Busy, match=f"pid {holder.pid}"):
            locks.refuse_busy(store, "op-b", "/t/mess2/Camera")  # the race really happened
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert holder.returncode == -signal.SIGKILL
    assert (Path(locks.lock_dir(store)) / "op-a.json").exists()  # what the dead run left
    with locks.held(store, "op-b", "/t/mess2/Camera", "apply"):
        assert [h.operation_id for h in locks.holders(store)] == ["op-b"]
    assert not (Path(locks.lock_dir(store)) / "op-a.json").exists()


def _record(store: DataStore, status: str) -> operations.OperationRecord:
    record = operations.OperationRecord(id=str(uuid.uuid4()), root="/t/mess2", status=status)
    operations.save(store, record)
    return record


INTERRUPTED = "the {} was interrupted (its run ended before finishing): run it again to finish it"


@pytest.mark.parametrize(
    ("status", "stage", "expected_error"),
    [
        (
            "applying",
            "apply",
            f"{INTERRUPTED.format('apply')} (fileorg apply ID), or undo what"
            " it did (fileorg rollback ID)",
        ),
        # not "or roll back what it did": a rollback is finished, and an apply waits for it
        ("rolling_back", "rollback", f"{INTERRUPTED.format('rollback')} (fileorg rollback ID)"),
    ],
)
def test_a_run_nobody_holds_is_interrupted(
    store: DataStore, status: str, stage: str, expected_error: str
) -> None:
    record = _record(store, status)
    with locks.held(store, record.id, record.root, "apply"):
        assert locks.reconcile(store, record).status == status  # its lock is held: working
    operations.save(store, record)  # as kill -9 leaves it: the status, and no lock
    found = locks.reconcile(store, operations.load(store, record.id))
    assert (found.status, found.stage) == ("interrupted", stage)
    assert found.error == expected_error.replace("ID", record.id)
    assert operations.load(store, record.id).status == "interrupted"  # saved


def test_a_run_that_raises_inside_its_lock_is_interrupted(store: DataStore) -> None:
    record = _record(store, "planned")
    with pytest.raises(RuntimeError), locks.held(store, record.id, record.root, "apply"):
        record.status = "applying"
        operations.save(store, record)
        raise RuntimeError("stopped")  # a graceful stop, a failure of the data folder...
    assert operations.load(store, record.id).status == "interrupted"
    done = _record(store, "planned")
    with locks.held(store, done.id, done.root, "apply"):
        done.status = "applied"
        operations.save(store, done)
    assert operations.load(store, done.id).status == "applied"  # a finished run is left alone
