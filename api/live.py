"""What the sockets of one API process share: reads of an operation, coalesced, the one event
hub (api.events) and the channels that fan an operation out to its sockets (api.fanout). They
live on the app's state, made on first use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI

from api import manifests
from api.deps import settings_of
from api.errors import NotFound
from api.events import EventHub
from api.fanout import Channels
from api.models import Operation
from api.operations import OperationService
from api.schemas import OperationPublic

MAX_COALESCED = 10_000
T = TypeVar("T")


class Reads:
    """Coalesces reads of one operation: many sockets following it cost one read at a time.

    A caller gets a read that started no earlier than `since` (when it subscribed, or when the
    event it reacts to arrived), so a shared read is never older than what it answers: callers
    arriving while a read runs share the next one, started when that one ends.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._current: dict[uuid.UUID, tuple[float, asyncio.Task[OperationPublic]]] = {}
        self._next: dict[uuid.UUID, asyncio.Task[OperationPublic]] = {}
        self._reports: dict[tuple[uuid.UUID, str | None], asyncio.Task[dict[str, Any] | None]] = {}

    async def read(self, operation_id: uuid.UUID, since: float) -> OperationPublic:
        current = self._current.get(operation_id)
        if current is not None and current[0] >= since:
            return await asyncio.shield(current[1])
        upcoming = self._next.get(operation_id)
        if upcoming is None:
            running = current[1] if current is not None and not current[1].done() else None
            if len(self._current) > MAX_COALESCED:
                self._current.clear()
            upcoming = asyncio.create_task(self._after(operation_id, running))
            self._next[operation_id] = upcoming
        return await asyncio.shield(upcoming)

    async def _after(
        self, operation_id: uuid.UUID, running: asyncio.Task[OperationPublic] | None
    ) -> OperationPublic:
        if running is not None:
            await asyncio.wait([running])
        this = asyncio.current_task()
        assert this is not None
        self._current[operation_id] = (time.monotonic(), this)
        self._next.pop(operation_id, None)
        return await self._read(operation_id)

    async def report(self, operation_id: uuid.UUID, view: OperationPublic) -> dict[str, Any] | None:
        """The report of a finished run, read once for all the sockets that follow it."""
        if view.status != "completed":
            return None
        key = (operation_id, view.flow_run_id)
        found = self._reports.get(key)
        if found is None:
            if len(self._reports) > MAX_COALESCED:
                self._reports.clear()
            found = self._reports[key] = asyncio.create_task(self._report(operation_id))
        return await asyncio.shield(found)

    async def _report(self, operation_id: uuid.UUID) -> dict[str, Any] | None:
        async with self.app.state.sessions() as session:
            op = await session.get(Operation, operation_id)
            if op is None:
                return None
            try:
                found = await manifests.report(settings_of(self.app).store(), op)
                return found.model_dump(mode="json")
            except Exception:  # no report (a scan that failed early, a rollback record...), or
                return None  # one that cannot be sent: the sockets get `done` without it

    async def _read(self, operation_id: uuid.UUID) -> OperationPublic:
        state = self.app.state
        async with state.sessions() as session:
            op = await session.get(Operation, operation_id)
            if op is None:
                raise NotFound("operation not found")
            store = settings_of(self.app).store()
            service = OperationService(session, state.orchestrator, store, state.start_lock)
            await service.refresh([op])  # a socket confirms what it pushes (api.cache)
            return await service.read(op)


def _on_state(app: FastAPI, name: str, kind: type[T], make: Callable[[], T]) -> T:
    found = getattr(app.state, name, None)
    if found is None:
        found = make()
        setattr(app.state, name, found)
    assert isinstance(found, kind)
    return found


def reads(app: FastAPI) -> Reads:
    return _on_state(app, "ws_reads", Reads, lambda: Reads(app))


def hub(app: FastAPI) -> EventHub:
    """The lifespan's hub (api.main); a hub without a subscription when none was started."""
    return _on_state(app, "hub", EventHub, lambda: EventHub(None))


def channels(app: FastAPI) -> Channels:
    return _on_state(app, "ws_channels", Channels, lambda: Channels(hub(app), reads(app)))
