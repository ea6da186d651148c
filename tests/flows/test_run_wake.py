"""The runner starts a new run of its deployments when the server announces it
(flows.run_wake), not at its next poll: with the poll an hour away, a run created on the
Prefect API is still picked up, through Prefect's own submission (it leaves Scheduled, and
here ends Failed: a run without a ticket refuses to start, flows.authorize)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client

from tests.api.stack import DEADLINE, RUNNER, runner_env, running
from tests.polling import until

DEPLOYMENT = "rollback/rollback"


def _create_run() -> uuid.UUID | None:
    """A new run of the rollback deployment, once the runner has registered it."""
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return None
        run = client.create_flow_run_from_deployment(
            deployment.id, parameters={"operation_id": str(uuid.uuid4())}
        )
        return run.id


def _ended(run_id: uuid.UUID) -> Any:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
    return state if state is not None and state.is_final() else None


def test_a_new_run_starts_without_waiting_for_the_next_poll(
    prefect_server: str, data_dir: Path, tmp_path: Path
) -> None:
    env = runner_env(prefect_server, data_dir, FILEORG_RUNNER_POLL_SECONDS="3600")
    log = tmp_path / "runner.log"

    def tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    with running(RUNNER, env=env, log=log):
        # The first run may be found by the poll the runner makes as it starts...
        first = until(_create_run, DEADLINE, f"the {DEPLOYMENT} deployment", every=0.5)
        until(lambda: _ended(first), DEADLINE, "the first run to end", every=0.2, detail=tail)
        # ...this one only by a wake: the next poll is 2,520-4,680 s away.
        second = _create_run()
        assert second is not None
        ended = until(lambda: _ended(second), DEADLINE, "the second run", every=0.2, detail=tail)
    assert ended.type.value == "FAILED", ended  # started, and refused for want of a ticket
