"""api.fanout: one channel per operation, driven by events on a live hub and a fake of the
coalesced reads. A client that reads nothing delays no other and still gets every state and
`done`; each message is serialized once however many sockets follow it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from api import fanout
from api.events import EventHub
from api.fanout import Channels, Close, Item, Outbox
from api.orchestrator import RunEvent, RunState
from api.schemas import OperationPublic

OP = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
RUN = "run-1"
GUARD = 30.0  # only so that a broken channel fails the test instead of hanging it


def view(status: str, state: str | None = None) -> OperationPublic:
    now = datetime.now(UTC)
    return OperationPublic(
        id=OP,
        operation_type="organize",
        root_path="/srv/photos",
        dry_run=True,
        parameters={},
        source_operation_id=None,
        run="organize",
        flow_run_id=RUN,
        status=status,  # type: ignore[arg-type]
        state=state,
        stage=None,
        stages={},
        summary={"moves": 4},
        error=None,
        created_at=now,
        updated_at=now,
    )


class FakeReads:
    """What api.live.Reads answers: the run as the test set it."""

    def __init__(self) -> None:
        self.view = view("pending")

    async def read(self, operation_id: uuid.UUID, since: float) -> OperationPublic:
        return self.view

    async def report(self, operation_id: uuid.UUID, shown: OperationPublic) -> dict[str, Any]:
        return {"files": 5}


async def _never(on_connected: Callable[[], None]) -> AsyncIterator[RunEvent]:
    raise AssertionError("the test dispatches the events itself")
    yield  # pragma: no cover


def live_hub() -> EventHub:
    events = EventHub(_never)
    events.connected.set()  # as when the subscription is up: events, not polling
    return events


def state(status: str) -> RunEvent:
    return RunEvent(RUN, "state", RunState(status))  # type: ignore[arg-type]


def progress(stage: str, files_done: int, stage_state: str = "running") -> RunEvent:
    payload = {"stage": stage, "state": stage_state, "files_done": files_done, "bytes_done": 0}
    return RunEvent(RUN, "progress", payload=payload)


async def next_item(outbox: Outbox) -> Item:
    return await asyncio.wait_for(outbox.get(), GUARD)


def parsed(items: list[Item]) -> list[dict[str, Any]]:
    return [json.loads(i) for i in items if isinstance(i, str)]


def test_a_slow_client_delays_no_other_and_still_gets_every_state_and_done() -> None:
    async def scenario() -> tuple[list[Item], list[Item], int]:
        events, reads = live_hub(), FakeReads()
        channels = Channels(events, reads)
        with channels.joined(OP) as fast, channels.joined(OP) as slow:
            got = [await next_item(fast)]  # pending
            events.dispatch(state("running"), RUN)
            got.append(await next_item(fast))
            for done in range(1, 51):
                events.dispatch(progress("scan", done * 10), RUN)
                got.append(await next_item(fast))  # each one, while slow reads nothing
            events.dispatch(progress("classify", 3), RUN)
            got.append(await next_item(fast))
            most_held = len(slow)
            reads.view = view("completed", "planned")
            events.dispatch(state("completed"), RUN)
            while not isinstance(got[-1], Close):
                got.append(await next_item(fast))
            return got, [await next_item(slow) for _ in range(len(slow))], most_held

    fast, slow, most_held = asyncio.run(scenario())

    fast_messages = parsed(fast)
    assert [m["files_done"] for m in fast_messages if m.get("stage") == "scan"] == [
        done * 10 for done in range(1, 51)
    ]
    slow_messages = parsed(slow)
    expected_states = ["pending", "running", "completed"]
    for messages in (fast_messages, slow_messages):
        assert [m["status"] for m in messages if m["type"] == "state"] == expected_states
        assert messages[-1]["type"] == "done"
        assert messages[-1]["report"] == {"files": 5}
    slow_progress = [
        (m["stage"], m["files_done"]) for m in slow_messages if m["type"] == "progress"
    ]
    assert slow_progress == [("scan", 500), ("classify", 3)]  # the latest of each stage
    assert most_held == 4  # pending, running, one scan, one classify: never all 50
    assert fast[-1] == slow[-1] == Close(fanout.CLOSE_DONE)


def test_every_message_is_serialized_once_for_all_its_sockets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[dict[str, Any]] = []
    real = fanout.encode

    def counting(message: dict[str, Any]) -> str:
        encoded.append(message)
        return real(message)

    monkeypatch.setattr(fanout, "encode", counting)

    async def scenario() -> list[list[Item]]:
        events, reads = live_hub(), FakeReads()
        channels = Channels(events, reads)
        with channels.joined(OP) as a, channels.joined(OP) as b, channels.joined(OP) as c:
            outboxes = (a, b, c)
            received = [[await next_item(o)] for o in outboxes]  # pending: the run is followed
            changes = [state("running"), *(progress("scan", done) for done in (1, 2, 3))]
            for event in changes:
                events.dispatch(event, RUN)
                for outbox, into in zip(outboxes, received, strict=True):
                    into.append(await next_item(outbox))
            reads.view = view("completed", "planned")
            events.dispatch(state("completed"), RUN)
            for outbox, into in zip(outboxes, received, strict=True):
                while not isinstance(into[-1], Close):
                    into.append(await next_item(outbox))
            return received

    a, b, c = asyncio.run(scenario())

    assert a == b == c and len(a) == 8  # pending, running, 3 progress, completed, done, close
    expected_types = ["state", "state", "progress", "progress", "progress", "state", "done"]
    assert [m["type"] for m in encoded] == expected_types
    assert all(x is y is z for x, y, z in zip(a, b, c, strict=True))  # one text, not copies


def test_a_slow_client_gets_every_stage_started_and_finished() -> None:
    """Only a stage's running counts are coalesced: a short stage's `started` and `finished`,
    queued together for a client that has not read them yet, both reach it (the report
    stage's `started` was replaced by its `finished`)."""

    async def scenario() -> list[Item]:
        events, reads = live_hub(), FakeReads()
        channels = Channels(events, reads)
        with channels.joined(OP) as fast, channels.joined(OP) as slow:
            got = [await next_item(fast)]  # pending: the run is followed
            for event in (
                progress("plan", 0, "started"),
                progress("plan", 4),
                progress("plan", 8),
                progress("plan", 9, "finished"),
                progress("report", 0, "started"),
                progress("report", 0, "finished"),
            ):
                events.dispatch(event, RUN)
            reads.view = view("completed", "planned")
            events.dispatch(state("completed"), RUN)
            while not isinstance(got[-1], Close):
                got.append(await next_item(fast))  # while slow reads nothing
            return [await next_item(slow) for _ in range(len(slow))]

    messages = parsed(asyncio.run(scenario()))

    assert [(m["stage"], m["stage_state"]) for m in messages if m["type"] == "progress"] == [
        ("plan", "started"),
        ("plan", "running"),
        ("plan", "finished"),
        ("report", "started"),
        ("report", "finished"),
    ]
    assert [m["files_done"] for m in messages if m.get("stage") == "plan"] == [0, 8, 9]
