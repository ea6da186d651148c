"""The process the crash tests kill: applies or rolls back one operation via tasks.apply.

Run as `python tests/crash_worker.py`. It imports the apply code once (never Prefect), prints
`ready`, then serves jobs, one JSON line each on stdin, by forking a child per job, so that a
job starts in a millisecond instead of paying the imports again. For each job:

    worker -> `started PID`   the child is running the job
    child  -> `done SECONDS CHANGES`  the child finished the job uninterrupted
    test   -> `reap`          after the test killed the child, or chose not to
    worker -> `exited PID STATUS`   the child is gone (waitpid's status)

The child is only reaped when the test says so, so its pid cannot be reused by another
process while the test may still send it SIGKILL.

Worker and child share one pipe, so every line is written whole by one write(2) of fewer
than PIPE_BUF bytes, newline included (`say`): a pipe never interleaves such writes. print()
does not promise that: under PYTHONUNBUFFERED (set in CI) it writes the text and its newline
as two writes, and a child's `done` once landed between them ("started 16058done ...").

A job: {"kind": "apply" | "rollback", "data_url", "op_dir", "root", "fallback": bool,
"exdev": bool, "kill_at": int | null}. `fallback` hides renameat2 so renames go through
link() + unlink(); `exdev` makes every move between two folders fail with EXDEV, as across
devices, so moves copy (cross_device below); `kill_at` makes the child SIGKILL itself just
before its kill_at-th change to the disk (a rename, link, unlink, mkdir, rmdir, write, fsync,
chmod or utime).
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from storage.journal import PHASES, applied_journals
from storage.locations import DataStore
from tasks.apply import fsops, local
from tasks.apply import stage as apply
from tasks.apply.stage import LocalApply

COUNTED = ("link", "unlink", "mkdir", "rmdir", "write", "fsync", "fchmod", "utime")
_write = os.write


def _arm(kill_at: int) -> Callable[[], int]:
    """SIGKILL this process just before its kill_at-th change to the disk; returns a counter
    of the changes made so far (a kill_at larger than the job needs measures it)."""
    calls = 0

    def counted(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)

        return wrapper

    for name in COUNTED:
        setattr(os, name, counted(getattr(os, name)))
    if fsops._renameat2 is not None:
        fsops._renameat2 = counted(fsops._renameat2)
    return lambda: calls


def cross_device(rename: Callable[[int, bytes, int, bytes], None]) -> Callable[..., None]:
    """`rename` as if every move from one folder descriptor to another crossed devices: apply
    then copies, verifies, links into place and removes the source. Renames within one
    folder (hard links set aside, restores) are left alone."""

    def wrapper(src_fd: int, src: bytes, dst_fd: int, dst: bytes) -> None:
        if src_fd != dst_fd:
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        rename(src_fd, src, dst_fd, dst)

    return wrapper


def run_job(job: dict[str, Any]) -> int:
    """Run the job; returns how many changes to the disk it made (0 when not counted)."""
    if job.get("fallback"):
        fsops._renameat2 = None
    if job.get("exdev"):
        local.rename_noreplace = cross_device(local.rename_noreplace)
    changes = _arm(int(job["kill_at"])) if job.get("kill_at") else lambda: 0
    store = DataStore(job["data_url"])
    op_dir, root = job["op_dir"], LocalApply(job["root"])
    if job["kind"] == "apply":
        for phase in PHASES:
            for shard in range(apply.plan_shards(store, op_dir)):
                apply.apply_shard(store, op_dir, root, phase, shard)
    else:
        for journal in reversed(applied_journals(store, op_dir)):
            apply.rollback_one(store, op_dir, root, journal)
        apply.tidy_dirs(store, op_dir, root)
    return changes()


def say(line: str) -> None:
    """One protocol line, whole, in one unbuffered write (the real os.write: a job may have
    wrapped os.write to count its changes)."""
    data = f"{line}\n".encode()
    assert len(data) < select.PIPE_BUF and "\n" not in line
    written = _write(1, data)
    assert written == len(data)  # a pipe writes a short line whole or not at all


def child(job: dict[str, Any]) -> None:
    code = 0
    try:
        started = time.perf_counter()
        changes = run_job(job)
        say(f"done {time.perf_counter() - started:.6f} {changes}")
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        code = 1
    os._exit(code)


def main() -> None:
    say("ready")
    while line := sys.stdin.readline():
        job = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(job)
        say(f"started {pid}")
        if sys.stdin.readline().strip() != "reap":
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        say(f"exited {pid} {status}")


if __name__ == "__main__":
    main()
