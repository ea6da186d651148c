"""pid_alive: the one check that a process exists, shared by tasks/pool.py and the
background server's record (flows/cli/background.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
