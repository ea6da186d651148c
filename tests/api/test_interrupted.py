"""Interrupted is a state, not a hang (issue 12 #7), through the API with the fake orchestrator:
a run that ended in the middle of an apply (its process gone, its Prefect server lost, a
graceful stop) reads `interrupted`, frees its root, and can be applied again or rolled back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from api.keeper import keeper
from api.orchestrator import APPLY_PLAN, ROLLBACK, RunState
from storage import locks, operations
from tests.api.conftest import Api, User


def _post(api: Api, user: User, path: str) -> Any:
    return api.client.post(path, headers=user.headers)


def _apply_dies(api: Api, user: User, root: Path) -> tuple[str, str]:
    """A dry run, then an apply whose run takes the lock, saves `applying` and dies (its
    process ended: the lock is gone, Prefect still says running)."""
    op_id = api.started(user, root)
    api.fake.complete = False
    assert _post(api, user, f"/api/v1/operations/{op_id}/apply").status_code == 202
    run_id = list(api.fake.runs)[-1]
    record = operations.load(api.store, op_id)
    record.status, record.stage, record.flow_run_id = "applying", "apply", run_id
    with locks.held(api.store, op_id, record.root, "apply", run_id):
        operations.save(api.store, record)
        api.settle()
        assert api.shown(user, op_id)["status"] == "running"  # the lock is held: working
    operations.save(api.store, record)  # as kill -9 leaves it: `applying`, and no lock
    api.settle()  # the keeper's next sweep
    return op_id, run_id


def test_an_apply_whose_process_ended_is_interrupted_and_frees_its_root(
    api: Api, tree: Path, alice: User
) -> None:
    op_id, run_id = _apply_dies(api, alice, tree / "alice")
    assert api.fake.runs[run_id].status == "running"  # what Prefect still says
    shown = api.shown(alice, op_id)
    assert (shown["status"], shown["state"], shown["stage"]) == (
        "interrupted",
        "interrupted",
        "apply",
    )
    assert "interrupted" in shown["error"]
    again = _post(api, alice, f"/api/v1/operations/{op_id}/cancel")
    assert again.status_code == 409  # nothing left to cancel: it is not running

    api.fake.complete = True
    undo = _post(api, alice, f"/api/v1/operations/{op_id}/rollback")  # the root is free
    assert undo.status_code == 202, undo.text
    assert api.fake.started[-1][0] == ROLLBACK
    assert api.fake.started[-1][1]["operation_id"] == op_id


def test_an_interrupted_apply_resumes(api: Api, tree: Path, alice: User) -> None:
    op_id, _ = _apply_dies(api, alice, tree / "alice")
    api.fake.complete = True
    resumed = _post(api, alice, f"/api/v1/operations/{op_id}/apply")
    assert resumed.status_code == 202, resumed.text
    assert api.fake.started[-1][0] == APPLY_PLAN
    assert api.fake.started[-1][1]["operation_id"] == op_id
    assert api.shown(alice, op_id)["state"] == "applied"


def test_a_run_prefect_lost_is_interrupted_on_api_start(api: Api, tree: Path, alice: User) -> None:
    api.fake.complete = False
    op_id = api.started(alice, tree / "alice")
    api.fake.runs.clear()  # the Prefect server was replaced: it knows no run any more
    app: Any = api.client.app

    # what the keeper does first when the API starts: confirm every unfinished row
    found = api.client.portal.call(lambda: keeper(app).sweep(everything=True))  # type: ignore[union-attr]
    assert found >= 1
    listed = api.client.get("/api/v1/operations", headers=alice.headers).json()["data"]
    assert [(o["id"], o["status"]) for o in listed] == [(op_id, "interrupted")]
    assert api.start(alice, tree / "alice").status_code == 202  # its root is free


def test_a_stopped_apply_can_be_rolled_back(api: Api, tree: Path, alice: User) -> None:
    """A graceful stop: the run failed in its apply stage (issue 12 #7b: 409 'never applied')."""
    op_id = api.started(alice, tree / "alice")
    record = operations.load(api.store, op_id)
    record.status, record.stage, record.error = "failed", "apply", "Cancelled"
    operations.save(api.store, record)
    undo = _post(api, alice, f"/api/v1/operations/{op_id}/rollback")
    assert undo.status_code == 202, undo.text


def test_an_interrupted_rollback_is_finished_not_applied(api: Api, tree: Path, alice: User) -> None:
    op_id = api.started(alice, tree / "alice")
    record = operations.load(api.store, op_id)
    record.status, record.stage = "rolling_back", "rollback"
    operations.save(api.store, record)  # nobody holds its lock: the rollback's run ended
    refused = _post(api, alice, f"/api/v1/operations/{op_id}/apply")
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"operation {op_id} was interrupted while rolling back: finish the rollback first "
        f"(fileorg rollback {op_id})"
    )
    assert _post(api, alice, f"/api/v1/operations/{op_id}/rollback").status_code == 202


def test_an_organize_interrupted_while_planning_reads_as_the_cli_lists_it(
    api: Api, tree: Path, alice: User
) -> None:
    """Ctrl-C in a stage of the plan: the record says `interrupted` with the line the CLI
    printed (storage.operations.interrupt_planning), and the API shows that status and line,
    as `fileorg operations` does; there is nothing to apply or roll back yet."""
    api.fake.complete = False
    op_id = api.started(alice, tree / "alice")
    run_id = list(api.fake.runs)[-1]
    api.fake.run(*api.fake.started[-1])  # the run's record, as far as it got
    record = operations.load(api.store, op_id)
    record.status, record.stage, record.flow_run_id = "running", "prefix", run_id
    line = f"interrupted: nothing in {record.root} was changed; resume it: fileorg organize ..."
    assert operations.interrupt_planning(record, line)
    operations.save(api.store, record)
    api.fake.runs[run_id] = RunState("failed", "Crashed")  # what Prefect says of that run
    api.settle()

    shown = api.shown(alice, op_id)
    applied = _post(api, alice, f"/api/v1/operations/{op_id}/apply")
    undone = _post(api, alice, f"/api/v1/operations/{op_id}/rollback")

    assert (shown["status"], shown["state"], shown["stage"]) == (
        "interrupted",
        "interrupted",
        "prefix",
    )
    assert shown["error"] == line
    assert applied.status_code == 409
    assert "is not a finished dry run (status: interrupted)" in applied.json()["detail"]
    assert undone.status_code == 409
