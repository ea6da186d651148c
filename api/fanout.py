"""One follower per operation, shared by every socket of this process that follows it.

A `Channel` does once, for all the sockets following an operation, what each socket used to do
for itself: it follows the run's events (api.events), reads the operation when it must (on
start, for a terminal state, when events may have been lost, every WATCHDOG_SECONDS without
events, every FALLBACK_SECONDS without a subscription) and follows the operation's next run when
one starts. Each message (docs/api.md) is serialized once, and the same text goes to every
socket's `Outbox`: with 1,000 sockets on one run, a progress event is one `json.dumps`, not 1,000.

An outbox never makes the channel wait. Each socket's writer (api.ws) drains its own, so a slow
client delays no one else. An outbox keeps every state, log, error and `done` in order, and every
stage's `started` and `finished`; a stage's running counts are coalesced (newer counts replace
those not yet sent), so it holds at most one running progress per stage, and a slow client gets
the latest counts, never counts that go backwards within one start of the stage, and never a
stage that finishes unstarted (a stage as short as the report once reached slow clients as its
`finished` alone). A `started` begins its stage's counts again: a stage started anew (the
operation's next run, followed by the same channel) begins at 0, and was once dropped whole.

A socket that joins a running channel gets its last state at once, and the channel confirms the
state with a read of its own (coalesced: one read at a time, however many sockets join) that
does not hold up the events meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from api.events import RESYNC, EventHub, Message, Resync
from api.orchestrator import TERMINAL, OrchestratorError, RunEvent
from api.schemas import OperationPublic

CLOSE_DONE = 1000
CLOSE_ERROR = 1011
WATCHDOG_SECONDS = 10.0
FALLBACK_SECONDS = 1.0  # no event subscription (no Prefect server): read the run this often
RANK = {"pending": 0, "running": 1, "completed": 2, "failed": 2, "cancelled": 2}
log = logging.getLogger("api.fanout")


def encode(message: dict[str, Any]) -> str:
    """A message as the text of one frame (as Starlette's send_json writes it)."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


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


PROGRESS_FIELDS = (
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


def progress_message(operation_id: uuid.UUID, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "progress",
        "operation_id": str(operation_id),
        "stage_state": payload.get("state"),
        **{k: payload.get(k) for k in PROGRESS_FIELDS},
    }


@dataclass(frozen=True)
class Close:
    """The last item of an outbox: close the socket with this code."""

    code: int
    reason: str = ""


Item = str | Close


class Outbox:
    """What one socket has yet to send: never blocks the sender, progress coalesced per stage."""

    def __init__(self) -> None:
        self._items: deque[tuple[str | None, Item]] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item, stage: str | None = None) -> None:
        """Queue `item`; a running progress (`stage` given) replaces that stage's running
        progress not yet sent.

        The newer one goes last, after any state queued since the one it replaces."""
        if stage is not None:
            for index, (key, _) in enumerate(self._items):
                if key == stage:
                    del self._items[index]
                    break
        self._items.append((stage, item))
        self._ready.set()

    async def get(self) -> Item:
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()[1]


class Reads(Protocol):
    """api.live.Reads: coalesced reads of an operation and of its report."""

    async def read(self, operation_id: uuid.UUID, since: float) -> OperationPublic: ...

    async def report(
        self, operation_id: uuid.UUID, view: OperationPublic
    ) -> dict[str, Any] | None: ...


class Confirmed(Resync):
    """A read made for sockets that joined; stale if a state was handled since it started."""

    def __init__(self, view: OperationPublic, handled: int) -> None:
        self.view, self.handled = view, handled


class Channel:
    """Follows one operation for every socket of this process that follows it."""

    def __init__(self, operation_id: uuid.UUID, events: EventHub, reads: Reads) -> None:
        self.operation_id = operation_id
        self.events, self.reads = events, reads
        self.outboxes: set[Outbox] = set()
        self.backlog: list[Item] = []  # what a socket joining now gets first
        self.sent: tuple[Any, ...] | None = None
        self.counts: dict[str, tuple[int, int]] = {}
        self.handled = 0  # views taken so far: tells a confirmation it is stale
        self._queue: asyncio.Queue[Message] | None = None
        self._confirm_wanted = False
        self._confirming: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self, on_end: Callable[[Channel], None]) -> None:
        self.task = asyncio.create_task(self.run(), name=f"channel-{self.operation_id}")
        self.task.add_done_callback(lambda _: on_end(self))

    def stop(self) -> None:
        for task in (self.task, self._confirming):
            if task is not None:
                task.cancel()

    def join(self, outbox: Outbox) -> None:
        for item in self.backlog:
            outbox.put(item)
        self.outboxes.add(outbox)
        if self.backlog and not isinstance(self.backlog[-1], Close):
            self._confirm_wanted = True
            if self._confirming is None or self._confirming.done():
                self._confirming = asyncio.create_task(self._confirm())

    def publish(self, item: Item, stage: str | None = None) -> None:
        for outbox in self.outboxes:
            outbox.put(item, stage)

    async def run(self) -> None:
        try:
            await self._follow()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if isinstance(exc, OrchestratorError):
                detail = str(exc)
            else:
                log.exception("following operation %s failed", self.operation_id)
                detail = "internal error"
            error = encode({"type": "error", "detail": detail})
            self._end([error], Close(CLOSE_ERROR, detail[:120]))

    async def _follow(self) -> None:
        view = await self.reads.read(self.operation_id, time.monotonic())
        while True:
            with self.events.follow(view.flow_run_id or "") as queue:
                self._queue = queue
                since = time.monotonic()  # read after subscribing: no change falls between
                view = self._take(await self.reads.read(self.operation_id, since))
                self._state(view)
                while view.status not in TERMINAL:
                    timeout = WATCHDOG_SECONDS if self.events.live else FALLBACK_SECONDS
                    try:
                        message: Message = await asyncio.wait_for(queue.get(), timeout)
                    except TimeoutError:
                        message = RESYNC
                    following = view.flow_run_id
                    view = await self._on_message(view, message, time.monotonic())
                    if view.flow_run_id != following:
                        break  # the operation started a new run: follow that one
                else:
                    await self._finish(view)
                    return

    def _take(self, view: OperationPublic) -> OperationPublic:
        self.handled += 1
        return view

    async def _on_message(
        self, view: OperationPublic, message: Message, arrived: float
    ) -> OperationPublic:
        if isinstance(message, RunEvent) and message.kind == "progress":
            self._progress(message.payload or {})
            return view
        if isinstance(message, Confirmed):
            if message.handled != self.handled:
                return view  # a newer state was handled while it was read
            read = self._take(message.view)
        else:
            state = message.state if isinstance(message, RunEvent) else None
            if state is not None and state.status not in TERMINAL:  # terminal ones are read
                if RANK[state.status] < RANK[view.status]:
                    return view  # queued before a read that showed a later state
                view = self._take(view.model_copy(update={"status": state.status}))
                self._state(view)
                return view
            read = self._take(await self.reads.read(self.operation_id, arrived))
        if read.status not in TERMINAL:
            self._state(read)
        return read

    async def _confirm(self) -> None:
        """Read for the sockets that joined, one read at a time, into the channel's queue."""
        while self._confirm_wanted:
            self._confirm_wanted = False
            handled = self.handled
            view = await self.reads.read(self.operation_id, time.monotonic())
            if self._queue is not None:
                with suppress(asyncio.QueueFull):  # the hub has queued a RESYNC instead
                    self._queue.put_nowait(Confirmed(view, handled))

    def _state(self, view: OperationPublic) -> None:
        key = (view.status, view.state, view.stage, view.flow_run_id)
        if key == self.sent:
            return
        self.sent = key
        text = encode(state_message(view))
        self.backlog = [text]
        self.publish(text)

    def _progress(self, payload: dict[str, Any]) -> None:
        stage = str(payload.get("stage"))
        counts = (int(payload.get("files_done") or 0), int(payload.get("bytes_done") or 0))
        last = self.counts.get(stage, (0, 0))
        started = payload.get("state") == "started"  # begins the counts again, from its own
        if not started and (counts[0] < last[0] or counts[1] < last[1]):
            return  # a late or replayed event: counts never go backwards within one start
        self.counts[stage] = counts
        coalesced = stage if payload.get("state") == "running" else None
        self.publish(encode(progress_message(self.operation_id, payload)), coalesced)

    async def _finish(self, view: OperationPublic) -> None:
        self._state(view)
        tail: list[Item] = []
        if view.error:
            tail.append(encode({"type": "log", "level": "error", "message": view.error}))
        report = await self.reads.report(self.operation_id, view)
        tail.append(encode(done_message(view, report)))
        self._end(tail, Close(CLOSE_DONE))

    def _end(self, tail: list[Item], close: Close) -> None:
        for item in [*tail, close]:
            self.publish(item)
        self.backlog = [*self.backlog, *tail, close]


class Channels:
    """The open channels of one process, one per followed operation."""

    def __init__(self, events: EventHub, reads: Reads) -> None:
        self.events, self.reads = events, reads
        self._open: dict[uuid.UUID, Channel] = {}

    def __len__(self) -> int:
        return len(self._open)

    @contextmanager
    def joined(self, operation_id: uuid.UUID) -> Iterator[Outbox]:
        """An outbox fed with the operation's messages while the block runs."""
        channel = self._open.get(operation_id)
        if channel is None:
            channel = self._open[operation_id] = Channel(operation_id, self.events, self.reads)
            channel.start(self._ended)
        outbox = Outbox()
        channel.join(outbox)
        try:
            yield outbox
        finally:
            channel.outboxes.discard(outbox)
            if not channel.outboxes:
                channel.stop()  # no one follows it here any more
                self._ended(channel)

    def _ended(self, channel: Channel) -> None:
        """A channel that ended or was stopped: later sockets start a new one (and read)."""
        if self._open.get(channel.operation_id) is channel:
            del self._open[channel.operation_id]
