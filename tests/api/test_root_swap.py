"""Issue 12 point 2: a root swapped for a symlink after the API authorized it escapes nothing.

The API starts the runs (its orchestrator records the parameters it would send to Prefect);
the real flows then run in this process with exactly those parameters, after the granted
folder was renamed away and a symlink to an ungranted folder put in its place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from api.orchestrator import APPLY_PLAN, ORGANIZE, ROLLBACK, RunState
from flows.apply import apply_plan_flow, rollback_flow
from flows.organize import organize_flow
from storage import operations
from storage.root_identity import RootChanged
from tests.api.conftest import Api, User
from tests.trees import snapshot

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.usefixtures("prefect_server"),
]


def _files(root: Path, prefix: str, count: int) -> None:
    root.mkdir(parents=True)
    for i in range(count):
        (root / f"{prefix}-{i}.txt").write_bytes(f"{prefix} {i}\n".encode())


class Swap:
    """The granted folder `root`, and the attack: rename it away, link `victim` in its place."""

    def __init__(self, root: Path, victim: Path) -> None:
        self.root, self.victim, self.real = root, victim, root.with_name(root.name + ".real")

    def swap(self) -> None:
        self.root.rename(self.real)
        self.root.symlink_to(self.victim, target_is_directory=True)

    def restore(self) -> None:
        self.root.unlink()
        self.real.rename(self.root)


def _run(api: Api, deployment: str) -> Any:
    """Run the flow the API just asked for, with the parameters it sent; mark it finished."""
    sent_to, parameters = api.fake.started[-1]
    assert sent_to == deployment
    flow = {ORGANIZE: organize_flow, APPLY_PLAN: apply_plan_flow, ROLLBACK: rollback_flow}
    ended = RunState("failed", "crashed")  # as Prefect ends a run whose flow raised
    try:
        result = flow[deployment](**parameters)
        ended = RunState("completed")
        return result
    finally:
        for run_id, state in api.fake.runs.items():
            if state.status == "running":
                api.fake.runs[run_id] = ended
        api.settle()  # the keeper's next sweep


def _setup(api: Api, tmp_path: Path) -> tuple[User, Swap]:
    api.fake.complete = False  # the real flows run below, not the fake's
    swap = Swap(tmp_path / "swap" / "a", tmp_path / "victim")
    _files(swap.root, "mine", 5)
    _files(swap.victim, "victim", 50)
    admin, alice = api.signup("admin"), api.signup("alice")
    api.grant(admin, alice, swap.root)
    return alice, swap


def test_a_root_swapped_after_the_start_is_refused_before_the_scan(
    api: Api, tmp_path: Path
) -> None:
    alice, swap = _setup(api, tmp_path)
    victim_before = snapshot(swap.victim)
    op_id = api.started(alice, swap.root, dry_run=False)  # plan and apply in one run
    swap.swap()
    with pytest.raises(RootChanged, match="symlink"):
        _run(api, ORGANIZE)

    assert snapshot(swap.victim) == victim_before
    record = operations.load(api.store, op_id)
    assert record.root == str(swap.root)  # never re-resolved to the victim
    assert record.status == "failed" and record.error and "symlink" in record.error
    assert not os.path.exists(api.store.operation_dir(op_id) + "/scan")  # nothing was listed
    api.fake.runs = {k: RunState("failed", "crashed") for k in api.fake.runs}
    shown = api.client.get(f"/api/v1/operations/{op_id}", headers=alice.headers).json()
    assert shown["status"] == "failed" and "symlink" in shown["error"]


def test_apply_and_rollback_refuse_a_root_swapped_after_the_dry_run(
    api: Api, tmp_path: Path
) -> None:
    alice, swap = _setup(api, tmp_path)
    victim_before, mine_before = snapshot(swap.victim), snapshot(swap.root)
    op_id = api.started(alice, swap.root, dry_run=True)
    _run(api, ORGANIZE)
    assert operations.load(api.store, op_id).status == "planned"

    swap.swap()
    applied = api.client.post(f"/api/v1/operations/{op_id}/apply", headers=alice.headers)
    assert applied.status_code == 403 and "symlink" in applied.json()["detail"]  # the API sees it
    with pytest.raises(RootChanged):  # and so does a run queued before the swap
        apply_plan_flow(operation_id=op_id)
    assert snapshot(swap.victim) == victim_before
    record = operations.load(api.store, op_id)
    assert record.status == "planned" and record.error  # refused, and can go on once it is back

    swap.restore()
    api.client.post(f"/api/v1/operations/{op_id}/apply", headers=alice.headers)
    assert _run(api, APPLY_PLAN)["apply"]["done"] == 5
    assert snapshot(swap.root) != mine_before

    swap.swap()
    undo = api.client.post(f"/api/v1/operations/{op_id}/rollback", headers=alice.headers)
    assert undo.status_code == 403, undo.text
    with pytest.raises(RootChanged):
        rollback_flow(operation_id=op_id)
    assert snapshot(swap.victim) == victim_before
    assert operations.load(api.store, op_id).status == "applied"

    swap.restore()
    api.client.post(f"/api/v1/operations/{op_id}/rollback", headers=alice.headers)
    assert _run(api, ROLLBACK)["undone"] == 5
    assert snapshot(swap.root) == mine_before
