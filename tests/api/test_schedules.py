"""/api/v1/schedules: Prefect deployment schedules with their own parameters, per user."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
import pytest

from api.orchestrator import PrefectOrchestrator
from storage import tickets
from tests.api.conftest import Api

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
FILEORG = Path(sys.executable).with_name("fileorg")


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
    body = {"root_path": str(tree / "alice"), "interval_seconds": 300, "duplicates": "quarantine"}

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
        "root_identity": [os.stat(tree / "alice").st_dev, os.stat(tree / "alice").st_ino],
        "owner": admin.id,
    }
    authorized_at = runs[0].parameters.pop("authorized_at")  # when it was authorized (#3)
    assert datetime.fromisoformat(authorized_at).tzinfo is not None
    signed = jwt.decode(  # the schedule's ticket (#4): what its runs may do, no expiry
        runs[0].parameters.pop("ticket"), tickets.ticket_key("s" * 64), algorithms=["HS256"]
    )
    assert signed["kind"] == "schedule" and "exp" not in signed
    assert {k: signed[k] for k in ("root", "options", "dry_run")} == {
        k: expected_parameters[k] for k in ("root", "options", "dry_run")
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
        ({"root_path": "/etc", "interval_seconds": 3600}, 403),
        ({"root_path": "", "interval_seconds": 3600}, 422),
        ({"cron": "0 3 * * 0", "interval_seconds": 3600}, 422),
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


# --- issue 12 #8, #9: rules checked before anything is stored; one bad schedule stays alone --


def _bad_schedule_in_prefect(deployment_id: str, slug: str, cron: str = "0 3 31 2 *") -> str:
    """A schedule that never fires, stored past the API (as before this check existed, or
    by hand in the Prefect UI)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.schedules import CronSchedule

    async def create() -> str:
        async with get_client() as client:
            made = await client.create_deployment_schedules(
                uuid.UUID(deployment_id), [(CronSchedule(cron=cron), True)], slug=slug
            )
            return str(made[0].id)

    return asyncio.run(create())


def _prefect_schedules(deployment_id: str) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    async def read() -> dict[str, Any]:
        async with get_client() as client:
            found = await client.read_deployment_schedules(uuid.UUID(deployment_id))
            return {str(s.id): s for s in found}

    return asyncio.run(read())


def _remove_all(deployment_id: str) -> None:
    from prefect.client.orchestration import get_client

    async def remove() -> None:
        async with get_client() as client:
            for s in await client.read_deployment_schedules(uuid.UUID(deployment_id)):
                await client.delete_deployment_schedule(uuid.UUID(deployment_id), s.id)

    asyncio.run(remove())


@SQLITE
@pytest.mark.parametrize(
    ("rule", "expected_message"),
    [
        ({"cron": "0 3 31 2 *"}, "never fires"),  # answered 503 and was stored (issue 12 #8)
        ({"cron": "0 3 31 4 *"}, "never fires"),
        ({"cron": "* * * * * *"}, "has 6 fields: give 5"),  # every second
        ({"cron": "* * * * * * *"}, "has 7 fields: give 5"),
        ({"cron": "@hourly"}, "has 1 field: give 5"),
        ({"interval_seconds": 1}, "at least 300 seconds"),  # 88 runs in 5 s (issue 12 #9)
        ({"interval_seconds": 299}, "at least 300 seconds"),
    ],
)
def test_schedules_that_never_fire_or_fire_too_often_are_refused_and_not_stored(
    prefect_api: Api,
    scheduled_cleanup: str,
    tree: Path,
    rule: dict[str, Any],
    expected_message: str,
) -> None:
    api = prefect_api
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    before = set(_prefect_schedules(scheduled_cleanup))

    response = api.client.post(
        "/api/v1/schedules", json={"root_path": str(tree / "alice"), **rule}, headers=admin.headers
    )

    assert response.status_code == 422, response.text
    assert expected_message in response.text
    assert set(_prefect_schedules(scheduled_cleanup)) == before


@SQLITE
def test_the_operator_sets_the_shortest_interval(
    make_api: Any, scheduled_cleanup: str, tree: Path
) -> None:
    api: Api = make_api(min_schedule_interval_seconds=3600)
    api.client.app.state.orchestrator = PrefectOrchestrator(timeout=20)  # type: ignore[attr-defined]
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    body = {"root_path": str(tree / "alice")}

    short = api.client.post(
        "/api/v1/schedules", json={**body, "interval_seconds": 600}, headers=admin.headers
    )
    hourly = api.client.post(
        "/api/v1/schedules", json={**body, "interval_seconds": 3600}, headers=admin.headers
    )

    assert (short.status_code, hourly.status_code) == (422, 201), (short.text, hourly.text)
    assert "at least 3600 seconds" in short.text
    api.client.delete(f"/api/v1/schedules/{hourly.json()['id']}", headers=admin.headers)


@SQLITE
def test_a_stored_schedule_that_never_fires_does_not_stop_the_others(
    prefect_api: Api, scheduled_cleanup: str, tree: Path
) -> None:
    """Issue 12 #8: after one unsatisfiable cron, every user's schedule creation answered 503
    (and stored it), and no schedule of the deployment got runs any more."""
    api = prefect_api
    _remove_all(scheduled_cleanup)
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    bad = _bad_schedule_in_prefect(scheduled_cleanup, f"fileorg:{uuid.uuid4()}:organize:bad")
    body = {"root_path": str(tree / "alice"), "interval_seconds": 3600}

    created = api.client.post("/api/v1/schedules", json=body, headers=admin.headers)

    assert created.status_code == 201, created.text
    runs = [r for r in _runs(scheduled_cleanup) if r.parameters.get("root") == str(tree / "alice")]
    assert runs, "the good schedule got no runs"
    stored = _prefect_schedules(scheduled_cleanup)
    assert stored[bad].active is False  # paused, left for its owner or the operator to see
    assert stored[created.json()["id"]].active is True
    _remove_all(scheduled_cleanup)


@SQLITE
def test_each_user_has_a_quota_of_schedules(make_api: Any, tree: Path) -> None:
    api: Api = make_api(schedules_per_user=2)
    admin, bob = api.signup("admin"), api.signup("bob")
    api.grant(admin, admin, tree / "alice")
    api.grant(admin, bob, tree / "bob")

    def create(user: Any, root: Path) -> int:
        body = {"root_path": str(root), "interval_seconds": 3600}
        return int(
            api.client.post("/api/v1/schedules", json=body, headers=user.headers).status_code
        )

    statuses = [create(admin, tree / "alice") for _ in range(3)]

    assert statuses == [201, 201, 409]
    assert len(api.fake.schedule_list) == 2
    assert create(bob, tree / "bob") == 201  # the quota is per user


@SQLITE
def test_a_quota_of_one_schedule_says_one_schedule(make_api: Any, tree: Path) -> None:
    api: Api = make_api(schedules_per_user=1)
    admin = api.signup("admin")
    api.grant(admin, admin, tree / "alice")
    body = {"root_path": str(tree / "alice"), "interval_seconds": 3600}
    answers = [
        api.client.post("/api/v1/schedules", json=body, headers=admin.headers) for _ in range(2)
    ]

    assert [a.status_code for a in answers] == [201, 409]
    assert answers[1].json()["detail"].startswith("you have 1 schedule, the most allowed (1)")
