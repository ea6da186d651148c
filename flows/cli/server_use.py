"""Who uses the background Prefect server (flows/cli/background.py) and when it was last used.

Every run that reports to it shares `in-use.lock` in its state folder from the moment it
found the server until it has sent Prefect everything (`fileorg serve` for as long as it
runs); the mtime of `last-use` is when a run last took or let go of it (and, while runs hold
it, the server's own watchdog renews it: flows/cli/prefect_server.py). A lock, not a count
in a file: a run that is killed lets go of it with its last descriptor, so a crash never
leaves the server "in use" for ever. Exclusive holders (replacing an outdated server, the
idle stop) take it under server.lock, as runs do: a run never waits for it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

# The lock this process shares, per state folder (a run uses one; tests use several).
_held: dict[Path, int] = {}


def _open(folder: Path) -> int:
    return os.open(folder / "in-use.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


def hold(folder: Path) -> None:
    """Share the lock until done() or until this process ends (to be called under
    server.lock)."""
    if folder not in _held:
        fd = _open(folder)
        fcntl.flock(fd, fcntl.LOCK_SH)
        _held[folder] = fd
    touch(folder)


def done(folder: Path) -> None:
    """This process no longer uses the server."""
    fd = _held.pop(folder, None)
    if fd is not None:
        touch(folder)
        fcntl.flock(fd, fcntl.LOCK_UN)  # for a forked child holding a copy of it too
        os.close(fd)


@contextmanager
def unused(folder: Path) -> Iterator[bool]:
    """Whether no run uses the server; while True, none can start using it."""
    fd = _open(folder)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def in_use(folder: Path) -> bool:
    with unused(folder) as free:
        return not free


def touch(folder: Path) -> None:
    with suppress(OSError):
        (folder / "last-use").touch()


def last_use(folder: Path, started: float) -> float:
    """When the server was last used (seconds since the epoch): at the earliest, `started`."""
    try:
        return max(started, (folder / "last-use").stat().st_mtime)
    except OSError:
        return started
