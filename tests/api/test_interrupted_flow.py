"""Interrupted is a state, not a hang (issue 12 #7), end to end: the API, a real Prefect server
and a runner. The apply's flow process is killed with SIGKILL in the middle (after its first
shard, on a file barrier); the API then reads it interrupted, its root is free, and POST
rollback puts the tree back exactly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.orchestrator import PrefectOrchestrator
from storage import locks
from tests.api.conftest import Api
from tests.api.test_integration import _finished, _make_tree, _until
from tests.apply_helpers import differences
from tests.trees import snapshot

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def barrier(prefect_server: str, data_dir: Path, tmp_path: Path) -> Iterator[Path]:
    """A runner whose apply runs stop after their first shard until {barrier}/go exists, with
    plans of two files a shard."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "FILEORG_DATA_URL": str(data_dir),
        "FILEORG_RUNNER_POLL_SECONDS": "1",
        "FILEORG_SHARD_ROWS": "2",
        "FILEORG_SECRET_KEY": "s" * 64,  # the API's (tests.api.conftest): it checks the tickets
        locks.PAUSE_ENV: str(barrier),
        locks.PAUSE_AT_ENV: "shard",
    }
    with (tmp_path / "runner.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.deployments"], cwd=REPO, env=env, stdout=log, stderr=log
        )
        try:
            yield barrier
        finally:
            (barrier / "go").touch()
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_an_apply_killed_mid_way_is_interrupted_and_rolls_back_exactly(
    make_api: Any, barrier: Path, tmp_path: Path
) -> None:
    api: Api = make_api()
    api.client.app.state.orchestrator = PrefectOrchestrator(timeout=20)  # type: ignore[attr-defined]
    root = tmp_path / "photos"
    _make_tree(root)
    before = snapshot(root)
    admin = api.signup("admin")
    api.grant(admin, admin, root)

    def started() -> str | None:  # 503 until the runner has registered its deployments
        response = api.start(admin, root, dry_run=True)
        assert response.status_code in (202, 503), response.text
        return response.json()["operation_id"] if response.status_code == 202 else None

    op_id = _until("the deployments", started)
    _finished(api, admin, op_id)
    applied = api.client.post(f"/api/v1/operations/{op_id}/apply", headers=admin.headers)
    assert applied.status_code == 202, applied.text
    _until("the apply's first shard", lambda: (barrier / "shard").exists() or None)
    (holder,) = locks.holders(api.store)
    assert holder.operation_id == op_id
    assert snapshot(root) != before  # some files moved, others not yet
    os.kill(holder.pid, signal.SIGKILL)  # the flow's own process

    def stopped() -> dict[str, Any] | None:
        shown: dict[str, Any] = api.client.get(
            f"/api/v1/operations/{op_id}", headers=admin.headers
        ).json()
        return shown if shown["status"] != "running" else None

    shown = _until("the operation to stop running", stopped)
    assert (shown["status"], shown["state"], shown["stage"]) == (
        "interrupted",
        "interrupted",
        "apply",
    )
    assert locks.holders(api.store) == []
    undo = api.client.post(f"/api/v1/operations/{op_id}/rollback", headers=admin.headers)
    assert undo.status_code == 202, undo.text  # the root is not locked
    assert _finished(api, admin, undo.json()["operation_id"])["state"] == "rolled_back"
    assert differences(before, snapshot(root)) == []  # the root's own mtime aside (see
    # tests/flows/test_cli_locks.py: a killed apply's folder times are not all given back)
