"""WS /ws/operations/{id}: an operation's state and progress, pushed as they happen.

Authentication: `Authorization: Bearer <access token>` (scripts) or the WebSocket subprotocols
`bearer, <access token>` (browsers; the server answers with `bearer`). Never in the URL.

Messages (JSON, one per frame, see docs/api.md): `state` on connect and on every change,
`progress` (stage, counts, rate, ETA), `log` (a state's message), `error`, and a final `done`
with the summary, after which the server closes with 1000. Refusals close with
4401 (no, bad or expired token) or 4404 (no such operation, or another user's).

One channel per operation and process (api.fanout) follows the run for all its sockets: it
takes the process's one Prefect subscription (api.events) and the coalesced reads (api.live),
confirms a terminal state by reading the flow run (and any state when events may have been
lost, and every WATCHDOG_SECONDS without events), and serializes each message once. Each
socket here only sends the texts its outbox holds, so a slow client delays no other.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import suppress

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from api.deps import current_user, operation_of
from api.errors import NotFound, Unauthorized
from api.fanout import CLOSE_ERROR, Close, Outbox
from api.live import channels
from api.security import TokenError

CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404
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


async def _write(websocket: WebSocket, outbox: Outbox) -> None:
    """Send what the channel queued for this socket, as text frames, until it says close."""
    while True:
        item = await outbox.get()
        if isinstance(item, Close):
            await websocket.close(item.code, item.reason or None)
            return
        await websocket.send({"type": "websocket.send", "text": item})


@router.websocket("/ws/operations/{operation_id}")
async def follow_operation(websocket: WebSocket, operation_id: str) -> None:
    found = await _authorized(websocket, operation_id)
    if found is None:
        return
    with channels(websocket.app).joined(found) as outbox:
        writer = asyncio.create_task(_write(websocket, outbox))
        listener = asyncio.create_task(_until_disconnected(websocket))
        try:
            await asyncio.wait({writer, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, listener):
                task.cancel()
            await asyncio.gather(writer, listener, return_exceptions=True)
