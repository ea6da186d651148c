"""Whether a process still exists: one check for the process pool (tasks/pool.py) and the
background server's record (flows/cli/background.py)."""

from __future__ import annotations

import os


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
