"""Issue 12 point 3: a revoke stops the user, not only their next new operation.

Apply and rollback of an operation authorized before the revoke are 403; the user's schedules
on the revoked root are paused (Prefect drops their scheduled runs); and a scheduled run that
starts anyway (queued before, or resumed in the Prefect UI) refuses the root in the flow.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.orchestrator import PrefectOrchestrator
from flows.organize import organize_flow
from storage.errors import RootError
from tests.api.conftest import Api, User
from tests.trees import snapshot


def _revoke(api: Api, user: User, root: Path) -> None:
    admin = api.users["admin"]
    response = api.client.delete(
        f"/api/v1/admin/users/{user.id}/roots", params={"root": str(root)}, headers=admin.headers
    )
    assert response.status_code == 204, response.text


def test_a_revoke_refuses_apply_and_rollback_of_older_operations(api: Api, tree: Path) -> None:
    admin, alice = api.signup("admin"), api.signup("alice")
    api.grant(admin, alice, tree / "alice")
    applied = api.started(alice, tree / "alice", dry_run=False)
    planned = api.started(alice, tree / "alice", dry_run=True)  # after it: not a stale plan
    started = len(api.fake.started)

    _revoke(api, alice, tree / "alice")

    for op_id, verb in ((planned, "apply"), (applied, "rollback")):
        response = api.client.post(f"/api/v1/operations/{op_id}/{verb}", headers=alice.headers)
        assert response.status_code == 403, response.text
        assert "no longer inside a root granted" in response.json()["detail"]
    assert len(api.fake.started) == started  # nothing was sent to Prefect

    api.grant(admin, alice, tree / "alice")  # granted again: the same operations may go on
    again = api.client.post(f"/api/v1/operations/{planned}/apply", headers=alice.headers)
    assert again.status_code == 202, again.text


@pytest.fixture
def prefect_api(make_api: Any, scheduled_cleanup: str) -> Iterator[Api]:
    api: Api = make_api()
    api.client.app.state.orchestrator = PrefectOrchestrator(timeout=20)  # type: ignore[attr-defined]
    yield api


def _schedules(deployment_id: str) -> tuple[dict[str, bool], list[Any]]:
    """The deployment's schedules (id: active) and its runs still scheduled."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    async def read() -> tuple[dict[str, bool], list[Any]]:
        async with get_client() as client:
            found = await client.read_deployment_schedules(uuid.UUID(deployment_id))
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(
                    id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)])
                ),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
            )
            return {str(s.id): s.active for s in found}, runs

    return asyncio.run(read())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_revoke_pauses_the_schedule_and_a_run_started_anyway_refuses(
    prefect_api: Api, scheduled_cleanup: str, tree: Path
) -> None:
    api = prefect_api
    admin, alice, bob = api.signup("admin"), api.signup("alice"), api.signup("bob")
    api.grant(admin, alice, tree / "alice")
    api.grant(admin, bob, tree / "bob")
    body = {"interval_seconds": 300, "dry_run": False}
    mine = api.client.post(
        "/api/v1/schedules", json={"root_path": str(tree / "alice"), **body}, headers=alice.headers
    )
    theirs = api.client.post(
        "/api/v1/schedules", json={"root_path": str(tree / "bob"), **body}, headers=bob.headers
    )
    assert mine.status_code == theirs.status_code == 201, (mine.text, theirs.text)
    _, runs = _schedules(scheduled_cleanup)
    queued = [r for r in runs if r.parameters.get("root") == str(tree / "alice")]
    assert queued, "the schedule made no flow run"
    before = snapshot(tree / "alice")

    _revoke(api, alice, tree / "alice")

    active, runs = _schedules(scheduled_cleanup)
    assert active[mine.json()["id"]] is False and active[theirs.json()["id"]] is True
    assert not [r for r in runs if r.parameters.get("root") == str(tree / "alice")]
    shown = api.client.get(f"/api/v1/schedules/{mine.json()['id']}", headers=alice.headers)
    assert shown.json()["active"] is False
    # A run of the schedule that starts anyway (queued before the revoke) refuses the root.
    with pytest.raises(RootError, match="revoked"):
        organize_flow(**queued[0].parameters)
    assert snapshot(tree / "alice") == before
