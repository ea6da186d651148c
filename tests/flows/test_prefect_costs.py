"""Prefect's fixed costs removed (flows.prefect_costs, installed by flows.runs): a sync flow
run's end does not wait for the heartbeat thread (it sleeps in whole seconds: ~0.5 s a run),
and Prefect's clients share one verified TLS context per CA file (65-120 ms each to build)."""

from __future__ import annotations

import os
import shutil
import ssl
import threading
import types
from pathlib import Path
from typing import Any

import certifi
import pytest
from prefect import flow, flow_engine

import flows.runs  # noqa: F401 - what the flows import: it installs flows.prefect_costs


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


def test_prefect_clients_share_one_verified_context_per_ca_file(tmp_path: Path) -> None:
    from prefect.client import orchestration
    from prefect.client.orchestration import get_client

    tls = orchestration.ssl
    first = tls.create_default_context(cafile=certifi.where())
    assert tls.create_default_context(cafile=certifi.where()) is first
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert tls.create_default_context() is not tls.create_default_context()  # made to change

    bundle = tmp_path / "ca.pem"
    shutil.copyfile(certifi.where(), bundle)
    other = tls.create_default_context(cafile=str(bundle))
    assert other is not first
    os.utime(bundle, ns=(1, 1))  # replaced since: read again
    assert tls.create_default_context(cafile=str(bundle)) is not other

    with get_client(sync_client=True) as client:  # and a client still reaches the server
        assert client.api_healthcheck() is None


def test_warm_makes_the_one_context_prefect_clients_then_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the warm runner makes before it forks: its children build none."""
    from prefect.client.orchestration import get_client

    from flows import prefect_costs

    monkeypatch.setattr(prefect_costs._shared, "_contexts", {})
    prefect_costs.warm()
    made = dict(prefect_costs._shared._contexts)
    with get_client(sync_client=True) as client:
        assert client.api_healthcheck() is None
    assert len(made) == 1 and prefect_costs._shared._contexts == made
