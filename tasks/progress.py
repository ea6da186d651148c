"""Progress: one small interface, several sinks (terminal bar, Prefect artifact, events, tests).

Tasks report counts per shard, never per file; `Progress` throttles what reaches the sinks to a
few updates a second, but always passes on the start and the end of a stage. Every stage a
sink hears of starts before it runs or finishes: a stage that finishes (or advances) without
its flow having said it started says so first (the report stage's `finished` once reached the
API's WebSockets with no `started` before it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol

from pydantic import BaseModel

THROTTLE_SECONDS = 0.25


class ProgressEvent(BaseModel):
    type: Literal["progress"] = "progress"
    operation_id: str
    stage: str
    state: Literal["started", "running", "finished"]
    files_done: int = 0
    files_total: int = 0
    bytes_done: int = 0
    bytes_total: int = 0


class ProgressSink(Protocol):
    def publish(self, event: ProgressEvent) -> None: ...


class RecordingSink:
    """Keeps every event: for tests."""

    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def publish(self, event: ProgressEvent) -> None:
        self.events.append(event)


_sinks: list[ProgressSink] = []
_lock = threading.Lock()


@contextmanager
def sink_installed(sink: ProgressSink) -> Iterator[ProgressSink]:
    """Send progress of operations run in this process to `sink` while the block runs."""
    with _lock:
        _sinks.append(sink)
    try:
        yield sink
    finally:
        with _lock:
            _sinks.remove(sink)


class _StageCounts:
    def __init__(self, files_total: int, bytes_total: int) -> None:
        self.files_total = files_total
        self.bytes_total = bytes_total
        self.files_done = 0
        self.bytes_done = 0
        self.last_sent = 0.0
        self.finished = False


class Progress:
    """Counts for one operation; safe to call from the task runner's threads."""

    def __init__(self, operation_id: str) -> None:
        self.operation_id = operation_id
        self._stages: dict[str, _StageCounts] = {}
        self._lock = threading.Lock()

    def start(self, stage: str, files_total: int = 0, bytes_total: int = 0) -> None:
        with self._lock:
            counts = self._stages[stage] = _StageCounts(files_total, bytes_total)
            event = self._event(stage, counts, "started")
        _publish(event)

    def advance(self, stage: str, files: int = 0, nbytes: int = 0) -> None:
        now = time.monotonic()
        with self._lock:
            counts, events = self._running(stage)
            counts.files_done += files
            counts.bytes_done += nbytes
            if events or now - counts.last_sent >= THROTTLE_SECONDS:
                counts.last_sent = now
                events.append(self._event(stage, counts, "running"))
        for event in events:
            _publish(event)

    def finish(self, stage: str) -> None:
        with self._lock:
            counts, events = self._running(stage)
            # A stage whose total was unknown up front (the scan) ends with done == total.
            counts.files_total = max(counts.files_total, counts.files_done)
            counts.bytes_total = max(counts.bytes_total, counts.bytes_done)
            counts.finished = True
            events.append(self._event(stage, counts, "finished"))
        for event in events:
            _publish(event)

    def _running(self, stage: str) -> tuple[_StageCounts, list[ProgressEvent]]:
        """The stage's counts, and its `started` to send first where it was not started: never
        before, or finished since. A stage that advances or finishes again after finishing
        starts again with the counts it had: counts never go backwards (a second finish once
        reset them to 0). Under the lock."""
        counts = self._stages.get(stage)
        if counts is None:
            counts = self._stages[stage] = _StageCounts(0, 0)
        elif not counts.finished:
            return counts, []
        counts.finished = False
        return counts, [self._event(stage, counts, "started")]

    def _event(
        self, stage: str, counts: _StageCounts, state: Literal["started", "running", "finished"]
    ) -> ProgressEvent:
        return ProgressEvent(
            operation_id=self.operation_id,
            stage=stage,
            state=state,
            files_done=counts.files_done,
            files_total=counts.files_total,
            bytes_done=counts.bytes_done,
            bytes_total=counts.bytes_total,
        )


_trackers: dict[str, Progress] = {}


def tracker(operation_id: str) -> Progress:
    with _lock:
        return _trackers.setdefault(operation_id, Progress(operation_id))


def _publish(event: ProgressEvent) -> None:
    with _lock:
        sinks = list(_sinks)
    for sink in sinks:
        sink.publish(event)
