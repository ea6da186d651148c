"""Waiting in tests: poll a condition until it holds, within a deadline, never a bare sleep.

A sleep long enough for a loaded machine is too long on a quiet one, and still fails on a
busier one; a polled deadline returns as soon as the condition holds and fails with what
it was waiting for. The deadlines are generous (two shared cores run several suites).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")


def until(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str,
    *,
    every: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    """Call `predicate` every `every` seconds until it returns something truthy, and return
    that; fail the test after `timeout` seconds, saying it was waiting for `what` (and
    `detail()`: a log's tail, the state last seen). The predicate is called at least once and
    once more at the deadline. It may raise to fail at once (a process that died meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found:
            return found
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}" + _more(detail))
        time.sleep(every)


def _more(detail: Callable[[], str] | None) -> str:
    return "" if detail is None else f":\n{detail()}"


def until_created(path: Path, by: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for the file barrier `path` that the process `by` creates; fail at once if the
    process ends first (with its output, when it is piped to this one)."""

    def created() -> bool:
        if by.poll() is not None:
            output = by.communicate() if by.stdout or by.stderr else ()
            pytest.fail(f"the process ended (status {by.returncode}) before {path}: {output}")
        return path.exists()

    until(created, timeout, f"{path} to be created")
