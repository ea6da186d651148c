"""Progress as Prefect events: what the API's WebSockets push to their clients.

A sink for tasks.progress, installed by the flows next to the progress artifact. Each event is
`fileorg.operation.progress` on the resource `fileorg.operation.{id}`, related to the flow run
it belongs to (the API routes events by flow run), with counts, rate and ETA in its payload.
At most a few updates a second per stage reach the server, but the start and the end of every
stage always do; a failure to emit never fails the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.events import emit_event

from storage.operations import PROGRESS_EVENT
from tasks.progress import ProgressEvent, sink_installed

MIN_INTERVAL = 0.3
log = logging.getLogger(__name__)


def current_flow_run_id() -> str | None:
    from prefect.runtime import flow_run

    run_id = flow_run.id
    return str(run_id) if run_id else None


def rate_and_eta(event: ProgressEvent, elapsed: float) -> dict[str, float | None]:
    """Files and bytes a second since the stage started, and the seconds left at that pace."""
    if elapsed <= 0:
        return {"files_per_second": None, "bytes_per_second": None, "eta_seconds": None}
    files_rate = event.files_done / elapsed
    bytes_rate = event.bytes_done / elapsed
    eta: float | None = None
    if event.state == "finished":
        eta = 0.0
    elif event.bytes_total and bytes_rate > 0:
        eta = max(0.0, (event.bytes_total - event.bytes_done) / bytes_rate)
    elif event.files_total and files_rate > 0:
        eta = max(0.0, (event.files_total - event.files_done) / files_rate)
    return {
        "files_per_second": round(files_rate, 1),
        "bytes_per_second": round(bytes_rate, 1),
        "eta_seconds": None if eta is None else round(eta, 1),
    }


class EventProgress:
    def __init__(self, operation_id: str, flow_run_id: str | None) -> None:
        self.operation_id = operation_id
        self.flow_run_id = flow_run_id
        self._started: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def publish(self, event: ProgressEvent) -> None:
        if event.operation_id != self.operation_id:
            return
        now = time.monotonic()
        with self._lock:
            if event.state == "started" or event.stage not in self._started:
                self._started[event.stage] = now
            if event.state == "running" and now - self._last.get(event.stage, 0.0) < MIN_INTERVAL:
                return
            self._last[event.stage] = now
            elapsed = now - self._started[event.stage]
        self._emit({**event.model_dump(), **rate_and_eta(event, elapsed), "sent_at": time.time()})

    def _emit(self, payload: dict[str, Any]) -> None:
        related = []
        if self.flow_run_id:
            related.append(
                {
                    "prefect.resource.id": f"prefect.flow-run.{self.flow_run_id}",
                    "prefect.resource.role": "flow-run",
                }
            )
        try:
            emit_event(
                event=PROGRESS_EVENT,
                resource={"prefect.resource.id": f"fileorg.operation.{self.operation_id}"},
                related=related,
                payload=payload,
            )
        except Exception as exc:  # live progress is a view; the work goes on without it
            log.warning("progress event not sent: %s", exc)


@contextmanager
def progress_events(operation_id: str) -> Iterator[EventProgress]:
    with sink_installed(EventProgress(operation_id, current_flow_run_id())) as sink:
        assert isinstance(sink, EventProgress)
        yield sink
