"""prefect.yaml: the deployments a work-pool install gets from `prefect deploy --all`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.utilities.importtools import import_object

from tests.polling import until_created

REPO = Path(__file__).resolve().parents[2]
PREFECT = Path(sys.executable).with_name("prefect")
EXPECTED_DEPLOYMENTS = {
    "organize": ("organize", "flows.organize:organize_flow"),
    "apply-plan": ("apply-plan", "flows.apply:apply_plan_flow"),
    "rollback": ("rollback", "flows.apply:rollback_flow"),
    "scheduled-cleanup": ("organize", "flows.organize:organize_flow"),
}


def _config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "prefect.yaml").read_text())
    return loaded


def test_every_deployment_points_at_its_flow() -> None:
    deployments = {d["name"]: d for d in _config()["deployments"]}

    assert set(deployments) == set(EXPECTED_DEPLOYMENTS)
    for name, (expected_flow, expected_entrypoint) in EXPECTED_DEPLOYMENTS.items():
        flow = import_object(deployments[name]["entrypoint"])
        assert deployments[name]["entrypoint"] == expected_entrypoint
        assert isinstance(flow, Flow)
        assert flow.name == expected_flow
        assert deployments[name]["work_pool"]["name"] == "fileorg"


def test_scheduled_cleanup_makes_a_new_operation_per_run() -> None:
    deployments = {d["name"]: d for d in _config()["deployments"]}

    assert deployments["scheduled-cleanup"]["parameters"] == {"operation_id": ""}


def _deployed(api_url: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            found = {}
            for name, (flow, _) in EXPECTED_DEPLOYMENTS.items():
                deployment = await client.read_deployment_by_name(f"{flow}/{name}")
                pulls = deployment.pull_steps or []
                found[name] = (deployment.entrypoint, deployment.work_pool_name, pulls)
            return found

    return asyncio.run(read())


def _forget_deployments() -> None:
    """Delete what `prefect deploy` registered on the session's server: a runner serving the
    same names later (another test file, in this worker) would inherit its work pool and
    storage, and its runs would look for the flow's code in a folder that does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async def forget() -> None:
        async with get_client() as client:
            for name, (flow, _) in EXPECTED_DEPLOYMENTS.items():
                with suppress(ObjectNotFound):
                    deployment = await client.read_deployment_by_name(f"{flow}/{name}")
                    await client.delete_deployment(deployment.id)
            with suppress(ObjectNotFound):
                await client.delete_work_pool("fileorg")

    asyncio.run(forget())


def test_prefect_deploy_all_registers_the_four_deployments(prefect_server: str) -> None:
    env = {**os.environ, "PREFECT_API_URL": prefect_server}
    try:
        for command in (
            [str(PREFECT), "work-pool", "create", "fileorg", "--type", "process", "--overwrite"],
            [str(PREFECT), "--no-prompt", "deploy", "--all"],
        ):
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, timeout=120)
            if done.returncode != 0:
                pytest.fail(f"{command}: {done.stdout.decode()}\n{done.stderr.decode()}")
        deployed = _deployed(prefect_server)
    finally:
        _forget_deployments()

    # No pull step: a worker anywhere runs the installed package, not the deployer's folder.
    assert deployed == {
        name: (entrypoint, "fileorg", []) for name, (_, entrypoint) in EXPECTED_DEPLOYMENTS.items()
    }


def _flow_run(flow_run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(flow_run_id)

    return asyncio.run(read())


def test_a_scheduled_run_is_a_new_operation_named_after_its_run(
    data_dir: Path, tmp_path: Path
) -> None:
    from flows.organize import organize_flow
    from storage import operations
    from storage.locations import DataStore

    root = tmp_path / "tree"
    root.mkdir()
    (root / "notes.txt").write_text("a note\n")

    state = organize_flow(operation_id="", root=str(root), return_state=True)

    flow_run = _flow_run(state.state_details.flow_run_id)
    record = operations.load(DataStore(str(data_dir)), str(flow_run.id))
    assert (record.status, record.root) == ("planned", str(root))
    assert flow_run.name == f"organize-{flow_run.id} {root}"


# A scheduled run (no operation id) in a process of its own, as the runner starts one.
SCHEDULED_RUN = """
import sys
from flows.organize import organize_flow
organize_flow(operation_id="", root=sys.argv[1])
"""


def test_a_schedules_next_run_skips_while_its_previous_run_is_going(
    data_dir: Path, tmp_path: Path
) -> None:
    from flows.organize import organize_flow
    from storage import operations
    from storage.locations import DataStore
    from storage.locks import PAUSE_AT_ENV, PAUSE_ENV

    root = tmp_path / "tree"
    root.mkdir()
    (root / "notes.txt").write_text("a note\n")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, PAUSE_ENV: str(barrier), PAUSE_AT_ENV: "schedule"}
    first = subprocess.Popen([sys.executable, "-c", SCHEDULED_RUN, str(root)], env=env)
    try:
        until_created(barrier / "schedule", first, 300)  # the first run holds its slot
        skipped = organize_flow(operation_id="", root=str(root), return_state=True)
        first_still_going = first.poll() is None
    finally:
        (barrier / "go").touch()
        first.wait(timeout=300)
    store = DataStore(str(data_dir))
    after = organize_flow(operation_id="", root=str(root), return_state=True)

    assert first_still_going  # the race happened: the second run came while the first worked
    assert skipped.name == "Skipped", skipped
    assert "previous run of this schedule" in (skipped.message or "")
    assert _flow_run(skipped.state_details.flow_run_id).state.name == "Skipped"
    assert first.returncode == 0
    made = {r.id: r.status for r in operations.list_all(store)}
    skipped_id = str(skipped.state_details.flow_run_id)
    assert skipped_id not in made  # a skipped run makes no operation
    assert after.is_completed() and after.name != "Skipped"  # the slot is free once it ended
    assert sorted(made.values()) == ["planned", "planned"]


def test_a_scheduled_run_skips_while_another_run_changes_an_overlapping_root(
    data_dir: Path, tmp_path: Path
) -> None:
    from flows.organize import organize_flow
    from storage import locks, operations
    from storage.locations import DataStore

    root = tmp_path / "tree"
    (root / "Camera").mkdir(parents=True)
    (root / "Camera" / "a.jpg").write_bytes(b"jpeg")
    store = DataStore(str(data_dir))
    # As `fileorg apply` or the API's apply holds it, on a folder inside the scheduled root.
    with locks.held(store, "op-applying", str(root / "Camera"), "apply"):
        assert locks.overlapping(store, str(root)) is not None  # the overlap is really there
        skipped = organize_flow(operation_id="", root=str(root), return_state=True)
    after = organize_flow(operation_id="", root=str(root), return_state=True)

    assert skipped.name == "Skipped", skipped
    assert "operation op-applying is applying" in (skipped.message or "")
    assert f"which overlaps {root}" in (skipped.message or "")
    made = {r.id: r.status for r in operations.list_all(store)}
    assert str(skipped.state_details.flow_run_id) not in made  # a skipped run makes no operation
    assert after.is_completed() and after.name != "Skipped"  # free again once the apply ended
    assert list(made.values()) == ["planned"]
