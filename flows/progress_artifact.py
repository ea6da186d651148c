"""Progress as a Prefect progress artifact: the percentage the Prefect UI shows on the run.

A sink for tasks.progress; at most one update a second reaches the server, whatever the
number of shards, and a failure to update never fails the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from tasks.progress import ProgressEvent, sink_installed

STAGES = ("scan", "classify", "prefix", "hash", "plan", "report", "apply", "rollback")
MIN_INTERVAL = 1.0
log = logging.getLogger(__name__)


class PrefectProgress:
    def __init__(self, operation_id: str, stages: tuple[str, ...]) -> None:
        self.operation_id = operation_id
        self.stages = stages
        self._done: set[str] = set()
        self._fraction: dict[str, float] = {}
        self._last = 0.0
        self._lock = threading.Lock()
        self.artifact_id: UUID | None = None

    def start(self) -> None:
        try:
            self.artifact_id = create_progress_artifact(  # type: ignore[assignment]
                progress=0.0,
                key=f"progress-{self.operation_id}",
                description=f"Operation {self.operation_id}",
            )
        except Exception as exc:  # the UI view is optional; the work is not
            log.warning("no progress artifact: %s", exc)

    def percent(self) -> float:
        share = 100.0 / len(self.stages)
        return min(
            100.0,
            sum(
                share if s in self._done else share * self._fraction.get(s, 0.0)
                for s in self.stages
            ),
        )

    def publish(self, event: ProgressEvent) -> None:
        if event.operation_id != self.operation_id or event.stage not in self.stages:
            return
        with self._lock:
            if event.state == "finished":
                self._done.add(event.stage)
            elif event.files_total:
                self._fraction[event.stage] = min(1.0, event.files_done / event.files_total)
            now = time.monotonic()
            if event.state == "running" and now - self._last < MIN_INTERVAL:
                return
            self._last = now
            value = self.percent()
        self._send(value)

    def _send(self, value: float) -> None:
        if self.artifact_id is None:
            return
        try:
            update_progress_artifact(artifact_id=self.artifact_id, progress=value)
        except Exception as exc:
            log.warning("progress artifact update failed: %s", exc)


@contextmanager
def progress_artifact(operation_id: str, stages: tuple[str, ...]) -> Iterator[PrefectProgress]:
    sink = PrefectProgress(operation_id, stages)
    sink.start()
    with sink_installed(sink):
        yield sink
