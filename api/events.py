"""One Prefect event subscription per API process, fanned out to the WebSockets following runs.

`EventHub.run()` keeps a single subscription to the Prefect server's event stream (state
changes of flow runs, and the progress events the flows emit) and hands each event to the
queues of the sockets that follow that flow run. A socket subscribes before it reads the
current state, so nothing between the two is lost. Events can be dropped (a full queue, a
reconnect): a socket is told to re-read the flow run when that may have happened (`RESYNC`).
The status cache (api.keeper) follows every run at once (`follow_all`), with the same rule.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress

from api.orchestrator import RunEvent, run_events

QUEUE_SIZE = 1000
RETRY_SECONDS = 2.0
log = logging.getLogger("api.events")


class Resync:
    """Marker put on a queue when events for it may have been lost."""


RESYNC = Resync()
Message = RunEvent | Resync
Source = Callable[[Callable[[], None]], AsyncIterator[RunEvent]]


class EventHub:
    def __init__(self, source: Source | None = run_events) -> None:
        self._source = source
        self._queues: dict[str, set[asyncio.Queue[Message]]] = defaultdict(set)
        self._everything: set[asyncio.Queue[Message]] = set()
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def live(self) -> bool:
        """Events arrive: without a subscription sockets fall back to reading the run."""
        return self._source is not None and self.connected.is_set()

    def start(self) -> None:
        if self._source is not None and self._task is None:
            self._task = asyncio.create_task(self._run(self._source), name="prefect-events")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @contextmanager
    def follow(self, flow_run_id: str) -> Iterator[asyncio.Queue[Message]]:
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_SIZE)
        self._queues[flow_run_id].add(queue)
        try:
            yield queue
        finally:
            followers = self._queues[flow_run_id]
            followers.discard(queue)
            if not followers:
                del self._queues[flow_run_id]

    @contextmanager
    def follow_all(self, size: int = QUEUE_SIZE) -> Iterator[asyncio.Queue[Message]]:
        """Every event of every run (and RESYNC when some may have been lost)."""
        queue: asyncio.Queue[Message] = asyncio.Queue(size)
        self._everything.add(queue)
        try:
            yield queue
        finally:
            self._everything.discard(queue)

    @property
    def sockets(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def dispatch(self, event: Message, flow_run_id: str | None = None) -> None:
        targets = (
            [q for qs in self._queues.values() for q in qs]
            if flow_run_id is None
            else list(self._queues.get(flow_run_id, ()))
        )
        targets += self._everything
        for queue in targets:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:  # a slow client: it re-reads the run instead
                with suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
                queue.put_nowait(RESYNC)

    async def _run(self, source: Source) -> None:
        failures = 0
        while True:
            try:
                async for event in source(self.connected.set):
                    self.dispatch(event, event.flow_run_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving sockets; they re-read runs meanwhile
                level = (
                    logging.WARNING if self.connected.is_set() or not failures else logging.DEBUG
                )
                log.log(level, "Prefect event stream lost: %s: %s", type(exc).__name__, exc)
            failures += 1
            self.connected.clear()
            self.dispatch(RESYNC)
            await asyncio.sleep(RETRY_SECONDS)
