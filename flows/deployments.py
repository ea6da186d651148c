"""Serve the deployments the API triggers by name: organize, apply-plan, rollback, and
scheduled-cleanup (organize for schedules: each scheduled run is a new operation).

    PREFECT_API_URL=http://127.0.0.1:4200/api python -m flows.deployments

One runner process polls the server (every FILEORG_RUNNER_POLL_SECONDS, default 2, and at once
when one of its deployments gets a new run: flows.run_wake) and runs each flow run in a
process of its own, forked from a process that imported the flows once (flows.warm_starts);
prefect.yaml declares the same deployments for work-pool installs.
Schedules belong to the deployments, not to this process: stopping it does not pause them
(their runs wait for the next runner).
"""

from __future__ import annotations

import asyncio
import os
from contextlib import suppress
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.exceptions import TerminationSignal
from prefect.runner import Runner

from flows.apply import apply_plan_flow, rollback_flow
from flows.organize import organize_flow
from flows.run_wake import serve_woken
from flows.warm_starts import use_forkserver


def serve_deployments(poll_seconds: float | None = None) -> None:
    """What prefect.serve does, but with the flows added as objects (Runner.add_flow), so
    that the runner starts their runs itself instead of `python -m prefect.engine` importing
    them again, and from the warm forkserver."""
    seconds = poll_seconds or float(os.environ.get("FILEORG_RUNNER_POLL_SECONDS", "2"))
    use_forkserver()
    runner = Runner(query_seconds=seconds, pause_on_shutdown=False)
    deployments = [
        _added(runner, organize_flow, name="organize"),
        _added(runner, apply_plan_flow, name="apply-plan"),
        _added(runner, rollback_flow, name="rollback"),
        _added(
            runner,
            organize_flow,
            name="scheduled-cleanup",
            parameters={"operation_id": ""},
            description="Organize on a schedule: every run is a new operation.",
        ),
    ]
    with suppress(KeyboardInterrupt, TerminationSignal):  # a stop, as prefect.serve takes it
        asyncio.run(serve_woken(runner, deployments))


def _added(runner: Runner, flow: Flow[..., Any], **options: Any) -> UUID:
    """The id of the deployment `runner.add_flow` registers (called outside an event loop,
    it returns the id, not a coroutine)."""
    deployment = runner.add_flow(flow, **options)
    assert isinstance(deployment, UUID), deployment
    return deployment


if __name__ == "__main__":
    serve_deployments()
