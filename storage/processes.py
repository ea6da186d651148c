"""Whether a process still exists, and what its environment says: one check for the process
pool (tasks/pool.py), the background server's record (flows/cli/background.py) and the warm
runner's (flows/cli/warm_state.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

# How long a process's empty environment is read again before it counts as another's. The
# window it covers lasted at most 43 ms in 200 starts at load 5 (sleep and python).
EMPTY_SECONDS = 5.0
_EXITING, _KERNEL_THREAD = 0x4, 0x200000  # PF_EXITING, PF_KTHREAD: /proc/PID/stat's flags


def pid_alive(pid: int) -> bool:
    """The kernel still has a process `pid` (a zombie counts): signal 0 checks without
    sending anything. Another user's process is alive too (EPERM)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_environ(pid: int) -> bytes:
    return Path(f"/proc/{pid}/environ").read_bytes()


def environ(pid: int, started_here: bool = False, seconds: float | None = None) -> bytes:
    """The environment `pid` started with (/proc; OSError as reading it raises).

    It reads empty from the moment a new process's exec has closed its starter's descriptors
    (Popen returns, and a record of it may be written) until the new program's stack is laid
    out, and also while a process exits and always for a kernel thread. For one this process
    `started_here` the empty read is returned (the caller knows it is its own). For any
    other, as a record's read by another process, an empty read is read again while the
    process lives, neither exits nor is a kernel thread, for up to `seconds`: taken for
    another's, a runner or server just started would be forgotten and left running (default:
    EMPTY_SECONDS)."""
    deadline = time.monotonic() + (EMPTY_SECONDS if seconds is None else seconds)
    while True:
        found = read_environ(pid)
        if found or started_here or not _may_be_starting(pid) or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def _may_be_starting(pid: int) -> bool:
    """Alive, not exiting and not a kernel thread: an empty environment may still be filled."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and not int(fields[6]) & (_EXITING | _KERNEL_THREAD)
