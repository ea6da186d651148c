"""The one module that talks to Prefect: start deployments by name, read and cancel their runs.

The API never imports flows or tasks. Prefect's states map onto five statuses:
pending (scheduled, pending, paused), running (running, cancelling), completed, failed
(failed, crashed) and cancelled. Tests use a fake with the same interface (`Orchestrator`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import anyio

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

RunStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

ORGANIZE = "organize/organize"
APPLY_PLAN = "apply-plan/apply-plan"
ROLLBACK = "rollback/rollback"

_STATE_TYPES: dict[str, RunStatus] = {
    "SCHEDULED": "pending",
    "PENDING": "pending",
    "PAUSED": "pending",
    "RUNNING": "running",
    "CANCELLING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "cancelled",
}


class OrchestratorError(Exception):
    """Prefect could not be reached or refused the request."""


@dataclass(frozen=True)
class RunState:
    status: RunStatus
    message: str | None = None


class Orchestrator(Protocol):
    async def start(self, deployment: str, parameters: dict[str, Any]) -> str: ...

    async def state(self, flow_run_id: str) -> RunState: ...

    async def cancel(self, flow_run_id: str) -> None: ...

    async def version(self) -> str: ...


def map_state(state_type: str | None, message: str | None = None) -> RunState:
    status = _STATE_TYPES.get((state_type or "PENDING").upper(), "pending")
    return RunState(status, message if status == "failed" else None)


class PrefectOrchestrator:
    """Prefect's client on PREFECT_API_URL; every call is bounded by `timeout` seconds.

    Without PREFECT_API_URL Prefect would start a temporary in-process server that no runner
    serves: refuse instead, so /api/v1/status says what is missing.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    @asynccontextmanager
    async def _client(self, what: str) -> AsyncIterator[PrefectClient]:
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise OrchestratorError("PREFECT_API_URL is not set")
        try:
            with anyio.fail_after(self.timeout):
                async with get_client() as client:
                    yield client
        except OrchestratorError:
            raise
        except Exception as exc:
            raise OrchestratorError(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def start(self, deployment: str, parameters: dict[str, Any]) -> str:
        from prefect.deployments import run_deployment

        async with self._client(f"cannot start {deployment}") as client:
            flow_run = await run_deployment(  # type: ignore[misc]
                deployment, client=client, parameters=parameters, timeout=0, as_subflow=False
            )
        return str(flow_run.id)

    async def state(self, flow_run_id: str) -> RunState:
        async with self._client(f"cannot read flow run {flow_run_id}") as client:
            flow_run = await client.read_flow_run(uuid.UUID(flow_run_id))
        if flow_run.state is None:
            return RunState("pending")
        return map_state(flow_run.state.type.value, flow_run.state.message)

    async def cancel(self, flow_run_id: str) -> None:
        from prefect.states import Cancelling

        async with self._client(f"cannot cancel flow run {flow_run_id}") as client:
            await client.set_flow_run_state(uuid.UUID(flow_run_id), Cancelling())

    async def version(self) -> str:
        async with self._client("Prefect is not reachable") as client:
            failure = await client.api_healthcheck()
            if failure is not None:
                raise OrchestratorError(f"Prefect is not healthy: {failure}")
            return str(await client.api_version())
