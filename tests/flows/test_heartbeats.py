"""A sync flow run's end does not wait for Prefect's heartbeat thread (flows.runs): the thread
sleeps in whole seconds, and the join cost ~0.5 s of every run."""

from __future__ import annotations

import threading
import types
from typing import Any

import pytest
from prefect import flow, flow_engine

import flows.runs  # noqa: F401 - what the flows import: it leaves the heartbeats unjoined


def test_a_flow_run_ends_without_joining_its_heartbeat_thread_which_still_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[threading.Thread] = []
    joined: list[threading.Thread] = []

    class Recorded(threading.Thread):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            loop = kwargs.get("args", (None,))[0]
            self.heartbeats = getattr(loop, "__name__", "") == "heartbeat_loop"

        def start(self) -> None:
            if self.heartbeats:
                started.append(self)
            super().start()

        def join(self, timeout: float | None = None) -> None:
            if self.heartbeats:
                joined.append(self)
            super().join(timeout)

    monkeypatch.setattr(
        flow_engine, "threading", types.SimpleNamespace(**{**vars(threading), "Thread": Recorded})
    )

    @flow
    def tiny() -> int:
        return 1

    assert tiny() == 1
    assert (len(started), joined) == (1, [])
    threading.Thread.join(started[0], timeout=30)  # it sees the stop by itself
    assert not started[0].is_alive()
