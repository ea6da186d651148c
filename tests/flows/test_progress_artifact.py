"""The progress artifact's sender: the flow's threads never wait on the server, at most one
update a second goes out, and the last value always does, when the run ends."""

from __future__ import annotations

import threading
from typing import Any
from uuid import uuid4

import pytest

from flows import progress_artifact
from flows.progress_artifact import PrefectProgress
from tasks.progress import ProgressEvent

OP = "op-1"


class FakeClient:
    def __init__(self) -> None:
        self.updates: list[tuple[str, float]] = []

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update_artifact(self, artifact_id: Any, artifact: Any) -> None:
        self.updates.append((threading.current_thread().name, artifact.data))


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> FakeClient:
    fake = FakeClient()
    monkeypatch.setattr(progress_artifact, "create_progress_artifact", lambda **kw: uuid4())
    monkeypatch.setattr("prefect.client.orchestration.get_client", lambda sync_client=False: fake)
    return fake


def _event(stage: str, state: str, done: int = 0, total: int = 0) -> ProgressEvent:
    return ProgressEvent(
        operation_id=OP, stage=stage, state=state, files_done=done, files_total=total
    )  # type: ignore[arg-type]


def test_many_events_make_few_updates_from_the_sender_and_the_last_one_at_close(
    client: FakeClient,
) -> None:
    sink = PrefectProgress(OP, ("scan", "plan"))
    sink.start()
    for stage in ("scan", "plan"):
        sink.publish(_event(stage, "started"))
        for done in range(1, 101):
            sink.publish(_event(stage, "running", done, 100))
        sink.publish(_event(stage, "finished"))
    sink.close()
    assert client.updates[-1] == ("fileorg-progress", 100.0)
    assert {name for name, _ in client.updates} == {"fileorg-progress"}
    assert len(client.updates) < 20  # 402 events


def test_a_run_that_moved_nothing_sends_nothing_but_its_artifact(client: FakeClient) -> None:
    sink = PrefectProgress(OP, ("scan",))
    sink.start()
    sink.publish(_event("scan", "started"))
    sink.publish(_event("other", "finished"))  # not one of its stages
    sink.close()
    assert (client.updates, sink.artifact_id is not None) == ([], True)
