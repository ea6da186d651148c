"""The warm runner's record (flows/cli/warm_state.py) against real processes, without a Prefect
server: a runner just started, whose environment still reads empty, is found and stopped, never
forgotten and left running; a process that is not ours is never signalled."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.cli import warm_state
from storage import processes
from tests.flows.test_serve import _alive
from tests.processes import environ_reads_empty

TOKEN = "0123456789abcdef" * 2


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "prefect-server"
    assert warm_state.private_dir(warm_state.warm_dir(state), create=True)
    return state


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes the test starts (`sleep 60`), each killed and reaped at its end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


def _spawn(started: list[subprocess.Popen[bytes]], env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["sleep", "60"], env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    started.append(process)
    return process


def _with_token() -> dict[str, str]:
    return {**os.environ, warm_state.TOKEN_VARIABLE: TOKEN}


def _recorded(state: Path, pid: int) -> warm_state.Runner:
    """The record another CLI writes right after its Popen returned (not started here)."""
    runner = warm_state.Runner(pid, TOKEN, "fingerprint", time.time(), ready=False)
    warm_state.write(warm_state.warm_dir(state), runner)
    return runner


def test_a_runner_found_right_after_another_process_started_it(
    state: Path, spawned: list[subprocess.Popen[bytes]]
) -> None:
    """Right after Popen the runner's environment can read empty; `fileorg status` (find)
    then said no runner ran (fails without: some of the 100 read so at load 5)."""
    missed = []
    for _ in range(100):
        process = _spawn(spawned, _with_token())
        record = _recorded(state, process.pid)
        if warm_state.find(state) != record:
            missed.append(process.pid)
        process.kill()
        process.wait()
    spawned.clear()
    assert missed == []


def test_stop_right_after_another_process_started_a_runner_stops_it(
    state: Path, spawned: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`fileorg stop` moments after a run started the runner: its environment read empty,
    stop() took it for another's, deleted runner.json and left it running, and said none
    ran. Its empty environment is read again: it is stopped (fails without)."""
    process = _spawn(spawned, _with_token())
    record = _recorded(state, process.pid)
    reads = environ_reads_empty(monkeypatch, first=3)

    stopped = warm_state.stop(state)

    assert stopped == record and len(reads) > 3
    assert not _alive(process.pid)  # ended on its SIGTERM, and reaped by stop()
    assert warm_state.read(warm_state.warm_dir(state)) is None
    assert "stopped runner pid" in (warm_state.warm_dir(state) / "runner.log").read_text()


def test_a_runner_this_process_started_counts_until_it_is_reaped(
    state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real runner started here is ours however its environment reads (here: always
    empty), until stop() has reaped it; then its pid may be reused and it is not."""
    environ_reads_empty(monkeypatch, first=10**9)
    record = warm_state.start(state, dict(os.environ))
    assert record is not None
    try:
        found = warm_state.find(state)
        stopped = warm_state.stop(state)
    finally:
        with_pid = warm_state._started.pop(record.pid, None)
        if with_pid is not None:  # not stopped: the test fails, and leaves nothing running
            with_pid.kill()
            with_pid.wait()
    assert found == record and stopped == record
    assert with_pid is None and not _alive(record.pid)
    assert not warm_state.ours(record)


def test_a_recorded_process_that_is_not_ours_is_never_signalled(
    state: Path, spawned: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record naming a process with no environment at all (a reused pid), read again for a
    while, or with another token: stop() forgets the record and signals neither."""
    monkeypatch.setattr(processes, "EMPTY_SECONDS", 0.3)
    for env in ({}, {**os.environ, warm_state.TOKEN_VARIABLE: "another"}):
        process = _spawn(spawned, env)
        _recorded(state, process.pid)
        assert warm_state.stop(state) is None
        assert process.poll() is None and _alive(process.pid)
        assert warm_state.read(warm_state.warm_dir(state)) is None
