"""pid_alive: the one check that a process exists, shared by tasks/pool.py and the
background server's record (flows/cli/background.py); environ: what a process's environment
says, as the background server's and the warm runner's records are checked, with real
processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import processes
from storage.processes import pid_alive


def test_a_running_process_is_alive() -> None:
    assert pid_alive(os.getpid())


def test_a_process_that_ended_and_was_reaped_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)


def test_an_ended_child_not_yet_reaped_still_counts() -> None:
    """A zombie still has its pid: the kernel answers signal 0 for it."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, left unreaped
    try:
        assert pid_alive(child.pid)
    finally:
        child.wait()


def test_another_users_process_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(pid: int, signum: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", refused)
    assert pid_alive(12345)


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def test_a_process_read_right_after_its_start_shows_its_environment() -> None:
    """Right after Popen returns, the new process's environment can still read empty (its
    exec has closed our descriptors, not yet laid out its stack): 12 of 200 `sleep`s at load
    5. Another process reading its record then (not started_here) took it for another's; it
    is read again until it shows (fails without: the empty first reads)."""
    empty = []
    for _ in range(200):
        process = _spawn(["sleep", "30"], {**os.environ, "TOKEN_FOR_TEST": "t"})
        try:
            if b"TOKEN_FOR_TEST=t" not in processes.environ(process.pid).split(b"\0"):
                empty.append(process.pid)
        finally:
            process.kill()
            process.wait()
    assert empty == []


def test_an_empty_environment_is_read_again_only_for_a_bounded_time() -> None:
    """A process that really has none (env -i) reads empty after `seconds`; one this process
    started_here is answered at once (the caller counts it as its own)."""
    process = _spawn(["sleep", "30"], {})
    try:
        started = time.monotonic()
        assert processes.environ(process.pid, started_here=True) == b""
        at_once = time.monotonic() - started
        assert processes.environ(process.pid, seconds=0.3) == b""
        waited = time.monotonic() - started - at_once
    finally:
        process.kill()
        process.wait()
    assert at_once < 0.2 and waited >= 0.3


def _kernel_thread() -> int | None:
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[6]) & 0x200000:  # PF_KTHREAD
                return int(entry.name)
    return None


def test_a_kernel_threads_empty_environment_is_answered_at_once() -> None:
    """A kernel thread (a reused pid a record may name) never shows one: not waited on.
    Linux 6.18 refuses the read (ESRCH); older kernels read it empty."""
    pid = _kernel_thread()
    if pid is None:
        pytest.skip("no kernel thread visible here (a pid namespace)")
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        assert processes.environ(pid, seconds=30) == b""
    assert time.monotonic() - started < 5
