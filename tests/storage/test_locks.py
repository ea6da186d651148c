"""storage.locks: one apply or rollback per operation and per overlapping root, and a lock that
dies with its process (kill -9 included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import locks
from storage.locations import DataStore

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
        env={**os.environ, locks.PAUSE_ENV: str(barrier)},
    )
    try:
        deadline = time.monotonic() + 60
        while not (barrier / "held").exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
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
