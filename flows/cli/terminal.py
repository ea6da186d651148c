"""What the user sees before and around a command: -v, and a status line within a second.

A command's first real output can be seconds away (imports, a local Prefect server), so on a
terminal a status line ("starting a local Prefect server...") is shown at once and erased by
whatever is written to stderr next: an error stays one line, a progress bar takes its place.
Off a terminal nothing extra is written (scripts read stdout, and stderr stays clean).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, TextIO

VERBOSE_FLAGS = ("-v", "--verbose")
# Set by the first Ctrl-C (flows.cli.main): what unwinds after it leaves cleanup to the exit.
INTERRUPTED = threading.Event()
_ERASE = "\r\x1b[K"


def take_verbose(argv: list[str]) -> bool:
    """Remove -v/--verbose from argv wherever it stands (before a `--`); say if it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = any(arg in VERBOSE_FLAGS for arg in argv[:end])
    argv[:end] = [arg for arg in argv[:end] if arg not in VERBOSE_FLAGS]
    return found


def verbose() -> bool:
    return os.environ.get("FILEORG_VERBOSE") == "1" or bool(os.environ.get("FILEORG_DEBUG"))


class StatusStderr:
    """sys.stderr, with a status line that the next write replaces."""

    def __init__(self, real: TextIO) -> None:
        self._real = real
        self._pending = False

    def status(self, text: str) -> None:
        self._real.write(f"{_ERASE}{text}")
        self._real.flush()
        self._pending = True

    def clear(self) -> None:
        if self._pending:
            self._pending = False
            self._real.write(_ERASE)
            self._real.flush()

    def write(self, text: str) -> int:
        if text:
            self.clear()
        return self._real.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class ClearsStatus:
    """sys.stdout on the same terminal: a prompt or a table there erases the status first."""

    def __init__(self, real: TextIO, stderr: StatusStderr) -> None:
        self._real = real
        self._stderr = stderr

    def write(self, text: str) -> int:
        if text:
            self._stderr.clear()
        return self._real.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def install() -> None:
    """Route stderr through StatusStderr when it is a terminal (and stdout, to clear it)."""
    if sys.stderr.isatty() and not isinstance(sys.stderr, StatusStderr):
        sys.stderr = StatusStderr(sys.stderr)
        if sys.stdout.isatty():
            sys.stdout = ClearsStatus(sys.stdout, sys.stderr)


def status(text: str) -> None:
    """Show `text` until the next output (a terminal only)."""
    if isinstance(sys.stderr, StatusStderr):
        sys.stderr.status(text)


def clear() -> None:
    if isinstance(sys.stderr, StatusStderr):
        sys.stderr.clear()


def first_status(argv: list[str]) -> str | None:
    """The line to show while a command starts, from its name alone (nothing is imported)."""
    command = next((a for a in argv[1:] if not a.startswith("-")), None)
    if command is None or {"--help", "--version"} & set(argv[1:]):
        return None
    if command == "serve":
        return "starting the Prefect server, the runner and the API..."
    if command in ("organize", "apply", "rollback"):
        url = os.environ.get("PREFECT_API_URL")
        local = "connecting to the local Prefect server..."  # started first, if none runs
        return f"connecting to Prefect at {url}..." if url else local
    return f"{command}..."
