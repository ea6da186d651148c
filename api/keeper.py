"""Keeps the status cache (api.cache) current, off the request path: one task per process.

From events (the process's one Prefect subscription, api.events, every run at once):
- a state change of a run sets the row's status (never back to an earlier one) and re-reads
  its record: one read of operation.json per event, not per request;
- a terminal state is confirmed: Prefect is asked, the record read (`cache.confirm`);
- a stage's start and end (progress events) re-read the record (stage, stage timings);
  progress within a stage is the sockets' (api.ws), not the cache's;
- the first state past Scheduled of a run of a schedule makes its row (api.scheduled_runs).

The sweep, every SWEEP_SECONDS (and at once on start, and after the subscription was lost
or dropped events): rows never filled (after the migration) and rows that look live but were
last confirmed over STALE_SECONDS ago are confirmed, so a lost event leaves a row stale for
at most STALE_SECONDS + SWEEP_SECONDS; without a subscription at all (Prefect down) that is the
bound too. Periodic rather than on read: a read never waits for Prefect or the data folder,
and the cost is bounded by the live rows, not by the request rate. Each sweep also re-reads
up to REBUILD_ROWS finished rows confirmed over REBUILD_SECONDS ago, oldest first (a record
changed by the CLI heals within minutes, at a few reads a second at most), and every
ADOPT_EVERY sweeps lists the scheduled runs (missed events of new ones). Several API
processes each keep the cache: their writes are the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import ColumnElement, and_, or_, select
from starlette.concurrency import run_in_threadpool

from api import cache, scheduled_runs
from api.deps import settings_of
from api.events import Resync
from api.live import hub
from api.models import Operation
from api.orchestrator import (
    SCHEDULED_CLEANUP,
    TERMINAL,
    OrchestratorError,
    PrefectOrchestrator,
    RunEvent,
    RunInfo,
    run_events,
)
from storage.operations import utcnow

SWEEP_SECONDS = 5.0
STALE_SECONDS = 30.0
REBUILD_ROWS = 20
REBUILD_SECONDS = 600.0
ADOPT_EVERY = 6
BATCH = 500
RANK = {"pending": 0, "running": 1}
STAGE_EDGES = ("started", "finished")
log = logging.getLogger("api.keeper")


def app_events(app: FastAPI) -> Callable[[Callable[[], None]], AsyncIterator[RunEvent]]:
    """The hub's source: Prefect's events once the app's orchestrator is Prefect's (tests
    swap a fake for it after start-up); until then it waits, connected to nothing."""

    async def source(on_connected: Callable[[], None]) -> AsyncIterator[RunEvent]:
        while not isinstance(app.state.orchestrator, PrefectOrchestrator):
            await asyncio.sleep(1.0)
        async for event in run_events(on_connected):
            yield event

    return source


class Keeper:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._task: asyncio.Task[None] | None = None
        self._everything = True  # the first sweep confirms every live row (a restart)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="status-keeper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        with hub(self.app).follow_all() as queue:
            sweeps = asyncio.create_task(self._sweeps(), name="status-sweeps")
            try:
                while True:
                    batch = [await queue.get()]
                    while not queue.empty() and len(batch) < BATCH:
                        batch.append(queue.get_nowait())
                    try:
                        await self.on_events(batch)
                    except Exception as exc:  # the sweep repairs what this missed
                        log.warning("status cache: %s: %s", type(exc).__name__, exc)
            finally:
                sweeps.cancel()
                with suppress(asyncio.CancelledError):
                    await sweeps

    async def _sweeps(self) -> None:
        count = 0
        while True:
            try:
                await self.sweep(adopt=count % ADOPT_EVERY == 0)
            except Exception as exc:  # Prefect or the database away: the next one tries again
                log.warning("status sweep: %s: %s", type(exc).__name__, exc)
            count += 1
            await asyncio.sleep(SWEEP_SECONDS)

    # --- events -----------------------------------------------------------------------------

    async def on_events(self, batch: list[Any]) -> None:
        """One pass per run over a batch of events: its last state (a terminal one wins), or
        an edge of a stage."""
        if any(isinstance(m, Resync) for m in batch):
            self._everything = True
            await self.sweep()
        runs: dict[str, RunEvent] = {}
        for event in batch:
            if not isinstance(event, RunEvent):
                continue
            seen = runs.get(event.flow_run_id)
            if event.kind == "state" and event.state is not None:
                if seen is None or seen.state is None or seen.state.status not in TERMINAL:
                    runs[event.flow_run_id] = event
            elif event.kind == "progress" and (event.payload or {}).get("state") in STAGE_EDGES:
                runs.setdefault(event.flow_run_id, event)
        for run_id, event in runs.items():
            await self.on_run(run_id, event)

    async def on_run(self, run_id: str, event: RunEvent) -> None:
        state = self.app.state
        store = settings_of(self.app).store()
        async with state.sessions() as session:
            op = await session.scalar(select(Operation).where(Operation.flow_run_id == run_id))
            if op is None:
                await self._maybe_adopt(session, run_id, event)
                return
            status = event.state.status if event.state else None
            if status in TERMINAL or op.status in TERMINAL:
                # a terminal state is confirmed; a late event of a finished run is not taken
                await cache.confirm(session, state.orchestrator, store, [op])
                return
            if status is not None and RANK.get(status, 0) >= RANK.get(op.status, 0):
                op.status, op.error = status, None
            record = await run_in_threadpool(cache.load_record, store, op.manifest_id)
            cache.fill(op, record)
            await session.commit()

    async def _maybe_adopt(self, session: Any, run_id: str, event: RunEvent) -> None:
        scheduled = event.deployment == SCHEDULED_CLEANUP.split("/")[1]
        if not scheduled or event.state is None or event.state.status == "pending":
            return  # not a schedule's, or still Scheduled (Prefect makes them ahead of time)
        await self._adopt(session, await self._scheduled_runs(run_id))

    async def _scheduled_runs(self, run_id: str | None = None) -> list[RunInfo]:
        listing = getattr(self.app.state.orchestrator, "scheduled_runs", None)
        if listing is None:  # an orchestrator without schedules
            return []
        found: list[RunInfo] = await listing(run_id)
        return found

    async def _adopt(self, session: Any, runs: list[RunInfo]) -> None:
        made = await scheduled_runs.adopt(session, self.app.state.secret, runs)
        store = settings_of(self.app).store()
        await cache.confirm(session, self.app.state.orchestrator, store, made)

    # --- the sweep --------------------------------------------------------------------------

    async def sweep(self, adopt: bool = False, everything: bool = False) -> int:
        """Confirm the rows that need it (see the module's docstring); how many were."""
        everything = everything or self._everything
        self._everything = False
        stale = utcnow() - timedelta(seconds=STALE_SECONDS)
        old = utcnow() - timedelta(seconds=REBUILD_SECONDS)
        live: ColumnElement[bool] = Operation.status.not_in(TERMINAL)
        if not everything:
            live = and_(live, or_(Operation.synced_at.is_(None), Operation.synced_at < stale))
        async with self.app.state.sessions() as session:
            if adopt:
                try:
                    await self._adopt(session, await self._scheduled_runs())
                except OrchestratorError as exc:  # the rows below are confirmed all the same
                    log.debug("scheduled runs not listed: %s", exc)
            ops = list(await session.scalars(select(Operation).where(live)))
            ops += await session.scalars(
                select(Operation).where(Operation.synced_at.is_(None)).limit(BATCH)
            )
            ops += await session.scalars(
                select(Operation)
                .where(Operation.status.in_(TERMINAL), Operation.synced_at < old)
                .order_by(Operation.synced_at.asc())
                .limit(REBUILD_ROWS)
            )
            unique = list({op.id: op for op in ops}.values())
            store = settings_of(self.app).store()
            await cache.confirm(session, self.app.state.orchestrator, store, unique)
        return len(unique)


def keeper(app: FastAPI) -> Keeper:
    found = getattr(app.state, "keeper", None)
    assert isinstance(found, Keeper), "the lifespan starts the keeper (api.main)"
    return found
