"""WS /ws/operations/{id}: an operation's state and progress, pushed as they happen.

Authentication: `Authorization: Bearer <access token>` (scripts) or the WebSocket subprotocols
`bearer, <access token>` (browsers; the server answers with `bearer`). Never in the URL.

Messages (JSON, one per frame, see docs/api.md): `state` on connect and on every change,
`progress` (stage, counts, rate, ETA), `log` (a state's message), `error`, and a final `done`
with the summary, after which the server closes with 1000. Refusals close with
4401 (no, bad or expired token) or 4404 (no such operation, or another user's).

Events come from the process's one Prefect subscription (api.events), reads of the operation
from api.live (one at a time per operation, shared by its sockets). A terminal state is
always confirmed by reading the flow run; so is any state when events may have been lost, and,
as a safety net, every WATCHDOG_SECONDS without events.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from api.deps import current_user, operation_of
from api.errors import NotFound, Unauthorized
from api.events import Resync
from api.live import hub, reads
from api.orchestrator import TERMINAL, OrchestratorError, RunEvent
from api.schemas import OperationPublic
from api.security import TokenError

CLOSE_DONE = 1000
CLOSE_ERROR = 1011
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
WATCHDOG_SECONDS = 10.0
FALLBACK_SECONDS = 1.0  # no event subscription (no Prefect server): read the run this often
RANK = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}
SUBPROTOCOL = "bearer"

router = APIRouter(tags=["operations"])
log = logging.getLogger("api.ws")


def credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to answer with) from the Authorization header or the subprotocols."""
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        offered = SUBPROTOCOL if SUBPROTOCOL in websocket.scope.get("subprotocols", []) else None
        return token.strip(), offered
    protocols: list[str] = list(websocket.scope.get("subprotocols", []))
    if len(protocols) >= 2 and protocols[0] == SUBPROTOCOL:
        return protocols[1], SUBPROTOCOL
    return None, SUBPROTOCOL if SUBPROTOCOL in protocols else None


def state_message(view: OperationPublic) -> dict[str, Any]:
    return {
        "type": "state",
        "operation_id": str(view.id),
        "flow_run_id": view.flow_run_id,
        "status": view.status,
        "state": view.state,
        "stage": view.stage,
        "error": view.error,
    }


def done_message(view: OperationPublic, report: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "type": "done",
        "operation_id": str(view.id),
        "status": view.status,
        "state": view.state,
        "error": view.error,
        "summary": view.summary,
        "report": report,
    }


def progress_message(operation_id: uuid.UUID, payload: dict[str, Any]) -> dict[str, Any]:
    fields = (
        "stage",
        "files_done",
        "files_total",
        "bytes_done",
        "bytes_total",
        "files_per_second",
        "bytes_per_second",
        "eta_seconds",
        "sent_at",
    )
    return {
        "type": "progress",
        "operation_id": str(operation_id),
        "stage_state": payload.get("state"),
        **{k: payload.get(k) for k in fields},
    }


class Follower:
    """One socket following one operation until its run ends."""

    def __init__(self, websocket: WebSocket, operation_id: uuid.UUID) -> None:
        self.ws = websocket
        self.app: FastAPI = websocket.app
        self.operation_id = operation_id
        self.sent: tuple[Any, ...] | None = None
        self.counts: dict[str, tuple[int, int]] = {}

    async def run(self) -> None:
        events = hub(self.app)
        view = await reads(self.app).read(self.operation_id, time.monotonic())
        while True:
            with events.follow(view.flow_run_id or "") as queue:
                since = time.monotonic()  # read after subscribing: no change falls between
                view = await reads(self.app).read(self.operation_id, since)
                await self.send_state(view)
                while view.status not in TERMINAL:
                    timeout = WATCHDOG_SECONDS if events.live else FALLBACK_SECONDS
                    try:
                        message: Any = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        message = Resync()
                    following = view.flow_run_id
                    view = await self.on_message(view, message, time.monotonic())
                    if view.flow_run_id != following:
                        break  # the operation started a new run: follow that one
                else:
                    await self.finish(view)
                    return

    async def on_message(
        self, view: OperationPublic, message: Any, arrived: float
    ) -> OperationPublic:
        if isinstance(message, RunEvent) and message.kind == "progress":
            await self.send_progress(message.payload or {})
            return view
        state = message.state if isinstance(message, RunEvent) else None
        if state is not None and state.status not in TERMINAL:  # terminal ones are read
            if RANK[state.status] < RANK[view.status]:
                return view  # queued before a read that showed a later state
            view = view.model_copy(update={"status": state.status})
            await self.send_state(view)
            return view
        view = await reads(self.app).read(self.operation_id, arrived)
        if view.status not in TERMINAL:
            await self.send_state(view)
        return view

    async def send_state(self, view: OperationPublic) -> None:
        key = (view.status, view.state, view.stage, view.flow_run_id)
        if key == self.sent:
            return
        self.sent = key
        await self.ws.send_json(state_message(view))

    async def send_progress(self, payload: dict[str, Any]) -> None:
        stage = str(payload.get("stage"))
        counts = (int(payload.get("files_done") or 0), int(payload.get("bytes_done") or 0))
        last = self.counts.get(stage, (0, 0))
        if counts[0] < last[0] or counts[1] < last[1]:
            return  # a late or replayed event: counts never go backwards
        self.counts[stage] = counts
        await self.ws.send_json(progress_message(self.operation_id, payload))

    async def finish(self, view: OperationPublic) -> None:
        await self.send_state(view)
        if view.error:
            await self.ws.send_json({"type": "log", "level": "error", "message": view.error})
        report = await reads(self.app).report(self.operation_id, view)
        await self.ws.send_json(done_message(view, report))
        await self.ws.close(CLOSE_DONE)


async def _authorized(websocket: WebSocket, operation_id: str) -> uuid.UUID | None:
    token, subprotocol = credentials(websocket)
    await websocket.accept(subprotocol=subprotocol)
    state = websocket.app.state
    try:
        async with state.sessions() as session:
            user = await current_user(session, state.secret, token)
            op = await operation_of(session, user, uuid.UUID(operation_id))
    except (Unauthorized, TokenError):
        await websocket.close(CLOSE_UNAUTHORIZED, "invalid or expired token")
        return None
    except (NotFound, ValueError):
        await websocket.close(CLOSE_NOT_FOUND, "operation not found")
        return None
    except Exception as exc:  # the database is overloaded or down: say so, do not hang
        log.error("websocket authentication failed: %s: %s", type(exc).__name__, exc)
        await websocket.close(CLOSE_ERROR, "try again later")
        return None
    return op.id


async def _until_disconnected(websocket: WebSocket) -> None:
    with suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return


@router.websocket("/ws/operations/{operation_id}")
async def follow_operation(websocket: WebSocket, operation_id: str) -> None:
    found = await _authorized(websocket, operation_id)
    if found is None:
        return
    follower = asyncio.create_task(Follower(websocket, found).run())
    listener = asyncio.create_task(_until_disconnected(websocket))
    try:
        done, _ = await asyncio.wait({follower, listener}, return_when=asyncio.FIRST_COMPLETED)
        if follower in done:
            error = follower.exception()
            if error is not None and websocket.client_state is WebSocketState.CONNECTED:
                detail = str(error) if isinstance(error, OrchestratorError) else "internal error"
                with suppress(Exception):
                    await websocket.send_json({"type": "error", "detail": detail})
                    await websocket.close(CLOSE_ERROR, detail[:120])
    finally:
        for task in (follower, listener):
            task.cancel()
        await asyncio.gather(follower, listener, return_exceptions=True)
