"""Interrupted is a state, not a hang (issue 12 #7), end to end: the API, a real Prefect server
and a runner. The apply's flow process is killed with SIGKILL in the middle (after its first
shard, on a file barrier); the API then reads it interrupted, its root is free, and POST
rollback puts the tree back exactly."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import locks
from tests.api.stack import (
    DEADLINE,
    RUNNER,
    dry_run_started,
    finished,
    make_tree,
    runner_env,
    running,
    shown_when,
)
from tests.apply_helpers import differences
from tests.polling import until
from tests.trees import snapshot


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (name) state"


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.fixture
def barrier(prefect_server: str, data_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A runner whose apply runs stop after their first shard until {barrier}/go exists, with
    plans of two files a shard."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = runner_env(
        prefect_server,
        data_dir,
        FILEORG_SHARD_ROWS="2",
        **{locks.PAUSE_ENV: str(barrier), locks.PAUSE_AT_ENV: "shard"},
    )
    with running(RUNNER, env=env, log=tmp_path / "runner.log"):
        try:
            yield barrier
        finally:
            (barrier / "go").touch()


def test_an_apply_killed_mid_way_is_interrupted_and_rolls_back_exactly(
    make_api: Any, barrier: Path, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    make_tree(root)
    before = snapshot(root)
    api, admin, op_id = dry_run_started(make_api, root)
    finished(api, admin, op_id)
    applied = api.client.post(f"/api/v1/operations/{op_id}/apply", headers=admin.headers)
    assert applied.status_code == 202, applied.text
    until(lambda: (barrier / "shard").exists(), DEADLINE, "the apply's first shard")
    (holder,) = locks.holders(api.store)
    assert holder.operation_id == op_id
    assert snapshot(root) != before  # some files moved, others not yet
    # The run is a fork of the runner's warm forkserver (flows.warm_starts), not a fresh
    # interpreter: what follows shows that a kill of such a run is still seen and undone.
    forkserver = _parent(holder.pid)
    assert "multiprocessing.forkserver" in _cmdline(forkserver)
    assert "flows.deployments" in _cmdline(_parent(forkserver))
    os.kill(holder.pid, signal.SIGKILL)  # the flow's own process

    stopped = shown_when(
        api, admin, op_id, "the run to stop", lambda shown: shown["status"] != "running"
    )
    assert (stopped["status"], stopped["state"], stopped["stage"]) == (
        "interrupted",
        "interrupted",
        "apply",
    )
    assert locks.holders(api.store) == []
    undo = api.client.post(f"/api/v1/operations/{op_id}/rollback", headers=admin.headers)
    assert undo.status_code == 202, undo.text  # the root is not locked
    assert finished(api, admin, undo.json()["operation_id"])["state"] == "rolled_back"
    assert differences(before, snapshot(root)) == []  # the root's own mtime aside (see
    # tests/flows/test_cli_locks.py: a killed apply's folder times are not all given back)
