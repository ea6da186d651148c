"""/api/v1/schedules: Prefect deployment schedules with their own parameters, per user."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.orchestrator import PrefectOrchestrator
from tests.api.conftest import Api

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FILEORG = Path(sys.executable).with_name("fileorg")


@pytest.fixture(scope="module")
def scheduled_cleanup(prefect_server: str) -> str:
    """The scheduled-cleanup deployment registered as the runner registers it (no runner:
    scheduled runs stay scheduled, which is what these tests read)."""
    from flows.deployments import _deployment
    from flows.organize import organize_flow

    deployment = _deployment(organize_flow, "scheduled-cleanup", parameters={"operation_id": ""})
    deployment_id = deployment.apply()
    return str(deployment_id)


@pytest.fixture
def prefect_api(make_api: Any, scheduled_cleanup: str) -> Iterator[Api]:
    api: Api = make_api()
    api.client.app.state.orchestrator = PrefectOrchestrator(timeout=20)  # type: ignore[attr-defined]
    yield api


def _runs(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async def read() -> list[Any]:
        async with get_client() as client:
            only = DeploymentFilter(id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)]))
            return await client.read_flow_runs(deployment_filter=only)

    return asyncio.run(read())


def _prefect_schedule_ids(deployment_id: str) -> set[str]:
    from prefect.client.orchestration import get_client

    async def read() -> set[str]:
        async with get_client() as client:
            found = await client.read_deployment_schedules(uuid.UUID(deployment_id))
            return {str(s.id) for s in found}

    return asyncio.run(read())


@SQLITE
def test_a_schedule_makes_runs_with_its_parameters_and_goes_when_deleted(
    prefect_api: Api, scheduled_cleanup: str, tree: Path
) -> None:
    api = prefect_api
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    body = {"root_path": str(tree / "alice"), "interval_seconds": 5, "duplicates": "quarantine"}

    created = api.client.post("/api/v1/schedules", json=body, headers=admin.headers)

    assert created.status_code == 201, created.text
    schedule = created.json()
    runs = [r for r in _runs(scheduled_cleanup) if r.parameters.get("root") == str(tree / "alice")]
    assert runs, "the schedule made no flow run"
    expected_parameters = {
        "operation_id": "",
        "root": str(tree / "alice"),
        "dry_run": True,
        "options": schedule["parameters"],
    }
    assert runs[0].parameters == expected_parameters
    assert runs[0].parameters["options"]["duplicates"] == "quarantine"
    assert schedule["id"] in _prefect_schedule_ids(scheduled_cleanup)
    listed = api.client.get("/api/v1/schedules", headers=admin.headers).json()
    assert [s["id"] for s in listed["data"]] == [schedule["id"]]

    deleted = api.client.delete(f"/api/v1/schedules/{schedule['id']}", headers=admin.headers)

    assert deleted.status_code == 204
    assert schedule["id"] not in _prefect_schedule_ids(scheduled_cleanup)
    left = [r for r in _runs(scheduled_cleanup) if r.parameters.get("root") == str(tree / "alice")]
    assert [r for r in left if r.state_type and r.state_type.value == "SCHEDULED"] == []


@SQLITE
def test_schedules_belong_to_their_owner(prefect_api: Api, tree: Path) -> None:
    api = prefect_api
    admin = api.signup("admin")
    bob = api.signup("bob")
    api.grant(admin, admin, tree / "alice")
    body = {"root_path": str(tree / "alice"), "cron": "0 3 * * 0", "timezone": "Europe/Paris"}
    schedule = api.client.post("/api/v1/schedules", json=body, headers=admin.headers).json()
    path = f"/api/v1/schedules/{schedule['id']}"

    assert api.client.get(path, headers=bob.headers).status_code == 404
    assert api.client.delete(path, headers=bob.headers).status_code == 404
    assert api.client.get("/api/v1/schedules", headers=bob.headers).json()["count"] == 0
    assert api.client.get(path, headers=admin.headers).json()["timezone"] == "Europe/Paris"
    assert api.client.delete(path, headers=admin.headers).status_code == 204


@SQLITE
@pytest.mark.parametrize(
    ("body", "expected_status"),
    [
        ({"root_path": "/etc", "interval_seconds": 60}, 403),
        ({"root_path": "", "interval_seconds": 60}, 422),
        ({"cron": "0 3 * * 0", "interval_seconds": 60}, 422),
        ({"cron": "not a cron"}, 422),
        ({"cron": "0 3 * * 0", "timezone": "Mars/Olympus"}, 422),
    ],
)
def test_bad_schedules_are_refused(
    prefect_api: Api, tree: Path, body: dict[str, Any], expected_status: int
) -> None:
    api = prefect_api
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    full = {"root_path": str(tree / "alice"), **body}

    response = api.client.post("/api/v1/schedules", json=full, headers=admin.headers)

    assert response.status_code == expected_status, response.text


def _fileorg(*args: str) -> Any:
    done = subprocess.run(
        [str(FILEORG), "schedule", *args], env=dict(os.environ), capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout) if "--json" in args else done.stdout.decode()


def test_the_command_line_adds_lists_and_removes_schedules(
    scheduled_cleanup: str, tmp_path: Path
) -> None:
    added = _fileorg("add", str(tmp_path), "--every", "3600", "--json")

    assert added["id"] in _prefect_schedule_ids(scheduled_cleanup)
    listed = {row["id"]: row for row in _fileorg("list", "--json")}
    assert (listed[added["id"]]["root"], listed[added["id"]]["dry_run"]) == (str(tmp_path), True)
    _fileorg("remove", added["id"])
    assert added["id"] not in _prefect_schedule_ids(scheduled_cleanup)
