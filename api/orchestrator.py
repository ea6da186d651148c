"""The one module that talks to Prefect: start deployments by name, read and cancel their runs.

The API never imports flows or tasks. Prefect's states map onto five statuses:
pending (scheduled, pending, paused), running (running, cancelling), completed, failed
(failed, crashed) and cancelled. Tests use a fake with the same interface (`Orchestrator`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import anyio

from api.prefect_tls import client_settings
from storage.cron import InvalidSchedule, check_cron
from storage.operations import PROGRESS_EVENT

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

log = logging.getLogger("api")
# "interrupted" is never a Prefect state: the API concludes it (api.operations, reconcile).
RunStatus = Literal["pending", "running", "completed", "failed", "cancelled", "interrupted"]
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled", "interrupted"})

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


class RunNotFound(OrchestratorError):
    """Prefect does not know the flow run (its server lost it, or was replaced)."""


@dataclass(frozen=True)
class RunState:
    status: RunStatus
    message: str | None = None


@dataclass(frozen=True)
class RunInfo:
    """A flow run a schedule started: which schedule (its id and slug), with what parameters."""

    flow_run_id: str
    state: RunState
    schedule_id: str
    slug: str
    parameters: dict[str, Any]


def _run_info(run: Any) -> RunInfo:
    state_type = run.state_type.value if run.state_type else None
    state = map_state(state_type, run.state.message if run.state else None)
    by = run.created_by
    return RunInfo(str(run.id), state, str(by.id), by.display_value or "", dict(run.parameters))


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
    serves: refuse instead, so /api/v1/status says what is missing."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout

    @asynccontextmanager
    async def client(self, what: str) -> AsyncIterator[PrefectClient]:
        """Prefect's client for one exchange, bounded by the timeout; any failure of it is an
        OrchestratorError that starts with `what`."""
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL

        if not PREFECT_API_URL.value():
            raise OrchestratorError("PREFECT_API_URL is not set")
        try:
            with anyio.fail_after(self.timeout):
                async with get_client(httpx_settings=client_settings()) as client:
                    yield client
        except OrchestratorError:
            raise
        except Exception as exc:
            raise OrchestratorError(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def start(self, deployment: str, parameters: dict[str, Any]) -> str:
        from prefect.deployments import run_deployment

        async with self.client(f"cannot start {deployment}") as client:
            flow_run = await run_deployment(  # type: ignore[misc]
                deployment, client=client, parameters=parameters, timeout=0, as_subflow=False
            )
        return str(flow_run.id)

    async def state(self, flow_run_id: str) -> RunState:
        from prefect.exceptions import ObjectNotFound

        async with self.client(f"cannot read flow run {flow_run_id}") as client:
            try:
                flow_run = await client.read_flow_run(uuid.UUID(flow_run_id))
            except ObjectNotFound:
                raise RunNotFound(f"Prefect has no flow run {flow_run_id}") from None
        if flow_run.state is None:
            return RunState("pending")
        return map_state(flow_run.state.type.value, flow_run.state.message)

    async def scheduled_runs(self, flow_run_id: str | None = None) -> list[RunInfo]:
        """Runs schedules made that left Scheduled, newest first (100), or the one given."""
        from prefect.client.schemas import filters as f
        from prefect.client.schemas.objects import StateType
        from prefect.client.schemas.sorting import FlowRunSort

        runs = f.FlowRunFilter(state={"type": {"not_any_": [StateType.SCHEDULED]}})  # type: ignore[arg-type]
        if flow_run_id is not None:
            runs.id = f.FlowRunFilterId(any_=[uuid.UUID(flow_run_id)])
        name = f.DeploymentFilter(name=f.DeploymentFilterName(any_=["scheduled-cleanup"]))
        async with self.client("cannot read the scheduled runs") as client:
            found = await client.read_flow_runs(
                flow_run_filter=runs, deployment_filter=name, sort=FlowRunSort.START_TIME_DESC
            )
        made = [r for r in found[:100] if r.created_by and r.created_by.type == "SCHEDULE"]
        return [_run_info(r) for r in made]

    async def cancel(self, flow_run_id: str) -> None:
        from prefect.states import Cancelling

        async with self.client(f"cannot cancel flow run {flow_run_id}") as client:
            await client.set_flow_run_state(uuid.UUID(flow_run_id), Cancelling())

    async def version(self) -> str:
        async with self.client("Prefect is not reachable") as client:
            failure = await client.api_healthcheck()
            if failure is not None:
                raise OrchestratorError(f"Prefect is not healthy: {failure}")
            return str(await client.api_version())


# --- live events (one subscription per API process, fanned out by api.events) ---------------

FLOW_RUN = "prefect.flow-run."


@dataclass(frozen=True)
class RunEvent:
    """A flow run's state change, or a progress update its flow emitted."""

    flow_run_id: str
    kind: Literal["state", "progress"]
    state: RunState | None = None
    payload: dict[str, Any] | None = None
    deployment: str | None = None  # the name of the run's deployment, on state changes


def to_run_event(
    name: str,
    resource_id: str,
    state_type: str | None,
    related: list[str],
    payload: Any,
    deployment: str | None = None,
) -> RunEvent | None:
    if name == PROGRESS_EVENT:
        run = next((r for r in related if r.startswith(FLOW_RUN)), None)
        if run is None or not isinstance(payload, dict):
            return None
        return RunEvent(run.removeprefix(FLOW_RUN), "progress", payload=payload)
    if name.startswith(FLOW_RUN) and resource_id.startswith(FLOW_RUN) and state_type:
        run_id, state = resource_id.removeprefix(FLOW_RUN), map_state(state_type)
        return RunEvent(run_id, "state", state, deployment=deployment)
    return None


async def run_events(on_connected: Callable[[], None]) -> AsyncIterator[RunEvent]:
    """Flow-run state changes and progress events from the Prefect server, as they happen.

    One websocket to the server's event stream, filtered to events about flow runs (as their
    resource, or related to them). Raises when the stream cannot be (re)connected.
    """
    from prefect.events.clients import get_events_subscriber
    from prefect.events.filters import EventAnyResourceFilter, EventFilter, EventNameFilter
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        raise OrchestratorError("PREFECT_API_URL is not set")
    wanted = EventFilter(
        event=EventNameFilter(prefix=[FLOW_RUN, PROGRESS_EVENT]),
        any_resource=EventAnyResourceFilter(id_prefix=[FLOW_RUN]),
    )
    async with get_events_subscriber(filter=wanted, reconnection_attempts=3) as subscriber:
        on_connected()
        async for event in subscriber:
            found = to_run_event(
                event.event,
                event.resource.id,
                event.resource.get("prefect.state-type"),
                [r.id for r in event.related],
                event.payload,
                next((r.name for r in event.related if r.role == "deployment"), None),
            )
            if found is not None:
                yield found


# --- schedules: Prefect deployment schedules on scheduled-cleanup ---------------------------

SCHEDULED_CLEANUP = "organize/scheduled-cleanup"


def validate_cron(cron: str, timezone: str) -> str:
    """The cron normalized, if it is ours (storage.cron: five fields, fires within a year, the
    CLI's rule too) and Prefect's own parser takes it; else InvalidSchedule. Here, not in the
    schemas or storage: Prefect's parser is a Prefect concern, and this module is its one door."""
    from prefect.client.schemas.schedules import CronSchedule

    normalized = check_cron(cron, timezone)
    try:
        CronSchedule(cron=normalized, timezone=timezone)
    except ValueError as exc:
        raise InvalidSchedule(str(exc)) from None
    return normalized


@dataclass(frozen=True)
class ScheduleSpec:
    slug: str
    parameters: dict[str, Any]
    cron: str | None = None
    interval_seconds: float | None = None
    timezone: str = "UTC"
    active: bool = True


@dataclass(frozen=True)
class ScheduleInfo:
    id: str
    slug: str
    parameters: dict[str, Any]
    cron: str | None
    interval_seconds: float | None
    timezone: str | None
    active: bool


@runtime_checkable
class Scheduler(Protocol):
    async def add_schedule(self, spec: ScheduleSpec) -> ScheduleInfo: ...

    async def schedules(self) -> list[ScheduleInfo]: ...

    async def remove_schedule(self, schedule_id: str) -> None: ...

    async def pause_schedule(self, schedule_id: str) -> None: ...


def _info(schedule: Any) -> ScheduleInfo:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    rule = schedule.schedule
    cron = rule.cron if isinstance(rule, CronSchedule) else None
    interval = rule.interval.total_seconds() if isinstance(rule, IntervalSchedule) else None
    return ScheduleInfo(
        id=str(schedule.id),
        slug=schedule.slug or "",
        parameters=dict(schedule.parameters or {}),
        cron=cron,
        interval_seconds=interval,
        timezone=getattr(rule, "timezone", None),
        active=bool(schedule.active),
    )


class PrefectScheduler:
    """Schedules of the scheduled-cleanup deployment, each with its own parameters and slug."""

    def __init__(self, orchestrator: PrefectOrchestrator) -> None:
        self._orchestrator = orchestrator

    async def _deployment_id(self, client: PrefectClient) -> uuid.UUID:
        from prefect.exceptions import ObjectNotFound

        try:
            return (await client.read_deployment_by_name(SCHEDULED_CLEANUP)).id
        except ObjectNotFound:
            raise OrchestratorError(
                f"the {SCHEDULED_CLEANUP} deployment is not registered on this Prefect server: "
                "run `fileorg serve` (its runner registers it) or deploy prefect.yaml (docs/api.md)"
            ) from None

    async def add_schedule(self, spec: ScheduleSpec) -> ScheduleInfo:
        from datetime import timedelta

        from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

        rule: Any
        if spec.cron is not None:
            rule = CronSchedule(cron=spec.cron, timezone=spec.timezone)
        else:
            assert spec.interval_seconds is not None
            seconds = timedelta(seconds=spec.interval_seconds)
            rule = IntervalSchedule(interval=seconds, timezone=spec.timezone)
        async with self._orchestrator.client("cannot create the schedule") as client:
            deployment_id = await self._deployment_id(client)
            created = await client.create_deployment_schedules(
                deployment_id, [(rule, spec.active)], parameters=spec.parameters, slug=spec.slug
            )
            try:
                await self._schedule_runs(client, deployment_id)
            except BaseException:
                # Nothing stays stored when the request fails (a timeout cancels: shield).
                with anyio.CancelScope(shield=True):
                    await client.delete_deployment_schedule(deployment_id, created[0].id)
                raise
        return _info(created[0])

    async def _schedule_runs(self, client: PrefectClient, deployment_id: uuid.UUID) -> None:
        """Ask the server to schedule the first runs now rather than on its next loop.

        The server schedules all of a deployment's schedules at once, and one that can never
        fire fails them all (issue 12 #8: the API refuses them, but one may have been stored
        before, or by hand in the Prefect UI). Such schedules are paused, then it is asked again.
        """
        from httpx import HTTPStatusError

        # No typed method for this route; `request` is the client's public way to any route.
        route = {"path_params": {"id": deployment_id}, "json": {}}
        try:
            await client.request("POST", "/deployments/{id}/schedule", **route)
        except HTTPStatusError:
            if not await self._pause_broken(client, deployment_id):
                raise
            await client.request("POST", "/deployments/{id}/schedule", **route)

    async def _pause_broken(self, client: PrefectClient, deployment_id: uuid.UUID) -> int:
        paused = 0
        for schedule in await client.read_deployment_schedules(deployment_id):
            info = _info(schedule)
            if not info.active or info.cron is None:
                continue
            try:
                check_cron(info.cron, info.timezone or "UTC")
            except InvalidSchedule as exc:
                log.warning("pausing schedule %s (%s): %s", info.id, info.slug, exc)
                await client.update_deployment_schedule(deployment_id, schedule.id, active=False)
                paused += 1
        return paused

    async def schedules(self) -> list[ScheduleInfo]:
        async with self._orchestrator.client("cannot read the schedules") as client:
            deployment_id = await self._deployment_id(client)
            found = await client.read_deployment_schedules(deployment_id)
        return [_info(s) for s in found]

    async def remove_schedule(self, schedule_id: str) -> None:
        async with self._orchestrator.client("cannot delete the schedule") as client:
            deployment_id = await self._deployment_id(client)
            await client.delete_deployment_schedule(deployment_id, uuid.UUID(schedule_id))

    async def pause_schedule(self, schedule_id: str) -> None:
        """Inactive: Prefect also deletes the runs it had scheduled for it ahead of time."""
        async with self._orchestrator.client("cannot pause the schedule") as client:
            deployment_id = await self._deployment_id(client)
            await client.update_deployment_schedule(
                deployment_id, uuid.UUID(schedule_id), active=False
            )
