"""Progress as a Prefect progress artifact: the percentage the Prefect UI shows on the run.

A sink for tasks.progress. The requests go from a thread of their own (in a copy of the run's
context: its server and flow run), so a stage never waits on the server: each one had cost
a request or two in the flow's thread (a new client each, ~0.1-0.2 s under load). At most one
update a second reaches the server, whatever the number of shards; the last value is sent
when the run ends (waited for, up to CLOSE_SECONDS), and a failure to update never fails the
run.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from uuid import UUID

from prefect.artifacts import create_progress_artifact

from tasks.progress import ProgressEvent, sink_installed

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

STAGES = ("scan", "classify", "prefix", "hash", "plan", "report", "apply", "rollback")
MIN_INTERVAL = 1.0
CLOSE_SECONDS = 30.0  # a deadline: the last value is one request
log = logging.getLogger(__name__)


class PrefectProgress:
    def __init__(self, operation_id: str, stages: tuple[str, ...]) -> None:
        self.operation_id = operation_id
        self.stages = stages
        self._done: set[str] = set()
        self._fraction: dict[str, float] = {}
        self._changed = threading.Condition()
        self._value = 0.0  # the latest percentage; the sender sends it when it differs
        self._closing = False
        self._thread: threading.Thread | None = None
        self.artifact_id: UUID | None = None
        self.sent: float | None = None  # the last value the server took

    def start(self) -> None:
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._send_all,), name="fileorg-progress", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Send the last value (unless sent) and wait for the sender, at most `timeout`."""
        with self._changed:
            self._closing = True
            self._changed.notify()
        if self._thread is not None:
            self._thread.join(timeout)

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
        with self._changed:
            if event.state == "finished":
                self._done.add(event.stage)
            elif event.files_total:
                self._fraction[event.stage] = min(1.0, event.files_done / event.files_total)
            self._value = self.percent()
            self._changed.notify()

    def _send_all(self) -> None:
        """The sender: the artifact, then the latest value at most once per MIN_INTERVAL, and
        the last one at close, over one client."""
        from prefect.client.orchestration import get_client

        try:
            self.artifact_id = create_progress_artifact(  # type: ignore[assignment]
                progress=0.0,
                key=f"progress-{self.operation_id}",
                description=f"Operation {self.operation_id}",
            )
            self.sent = 0.0
            with get_client(sync_client=True) as client:
                self._updates(client)
        except Exception as exc:  # the UI view is optional; the work is not
            log.warning("no progress artifact: %s", exc)

    def _updates(self, client: SyncPrefectClient) -> None:
        last = 0.0
        while True:
            with self._changed:
                while self._value == self.sent and not self._closing:
                    self._changed.wait()
                closing, value = self._closing, self._value
            wait = last + MIN_INTERVAL - time.monotonic()
            if wait > 0 and not closing:
                with self._changed:  # more may come meanwhile: the value sent is the latest
                    self._changed.wait_for(lambda: self._closing, timeout=wait)
                continue
            if value != self.sent:
                self._send(client, value)
                last = time.monotonic()
            if closing:
                return

    def _send(self, client: SyncPrefectClient, value: float) -> None:
        from prefect.client.schemas.actions import ArtifactUpdate

        assert self.artifact_id is not None
        try:
            client.update_artifact(
                artifact_id=self.artifact_id, artifact=ArtifactUpdate(data=value)
            )
        except Exception as exc:
            log.warning("progress artifact update failed: %s", exc)
        self.sent = value  # or not sent: the next change sends its own


@contextmanager
def progress_artifact(operation_id: str, stages: tuple[str, ...]) -> Iterator[PrefectProgress]:
    sink = PrefectProgress(operation_id, stages)
    sink.start()
    try:
        with sink_installed(sink):
            yield sink
    finally:
        sink.close()
