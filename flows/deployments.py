"""Serve the deployments the API triggers by name: organize, apply-plan, rollback, and
scheduled-cleanup (organize for schedules: each scheduled run is a new operation).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deployments

One runner process polls the server (every FILEORG_RUNNER_POLL_SECONDS, default 2) and runs
each flow run in a subprocess of its own; prefect.yaml declares the same deployments for
work-pool installs. Schedules belong to the deployments, not to this process: stopping it
does not pause them (their runs wait for the next runner).
"""

from __future__ import annotations

import os
from typing import Any

from prefect import serve
from prefect.deployments.runner import RunnerDeployment

from flows.apply import apply_plan_flow, rollback_flow
from flows.organize import organize_flow


def _deployment(flow: Any, name: str, **kwargs: Any) -> RunnerDeployment:
    deployment = flow.to_deployment(name=name, **kwargs)  # sync outside an event loop
    assert isinstance(deployment, RunnerDeployment)
    return deployment


def serve_deployments(poll_seconds: float | None = None) -> None:
    seconds = poll_seconds or float(os.environ.get("FILEORG_RUNNER_POLL_SECONDS", "2"))
    serve(
        _deployment(organize_flow, "organize"),
        _deployment(apply_plan_flow, "apply-plan"),
        _deployment(rollback_flow, "rollback"),
        _deployment(
            organize_flow,
            "scheduled-cleanup",
            parameters={"operation_id": ""},
            description="Organize on a schedule: every run is a new operation.",
        ),
        query_seconds=seconds,
        pause_on_shutdown=False,
        print_starting_message=False,
    )


if __name__ == "__main__":
    serve_deployments()
