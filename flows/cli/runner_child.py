"""The warm runner's child (flows/cli/runner.py forks it): it waits for the go, takes the
client's terminal, cwd, umask, environment and argv, runs the command as `fileorg` would
(flows.cli.run_here), and exits with its code; it notes what it imported for the next runner.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

LEARNED = "modules.txt"  # what the last child imported that the runner had not


def run(
    close: Callable[[], None], folder: Path, request: dict[str, Any], fds: list[int], go: int
) -> None:
    """The forked child: wait for the go, become the client's command, exit with its code."""
    code = 1
    try:
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        close()
        if os.read(go, 1) != b"g":  # the client never heard of us: it runs the command itself
            os._exit(1)
        os.close(go)
        before = set(sys.modules)
        _take(request, fds)
        code = _run()
        _learn(folder, before)
    except BaseException:  # the child's last word: what Python would print
        with suppress(Exception):
            import traceback

            traceback.print_exc()
    finally:
        os._exit(code)


def _take(request: dict[str, Any], fds: list[int]) -> None:
    """The client's terminal, cwd, umask, environment and argv, as its own process has them."""
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
        os.close(fd)
    os.fchdir(fds[3])  # the client's cwd as it is (even renamed, or not readable)
    os.close(fds[3])
    os.umask(int(request["umask"]))
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = list(request["argv"])
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        encoding, errors = request["stdio"][fd]
        stream = open(  # noqa: SIM115 - the process's own stream, as Python makes it
            fd,
            "r" if fd == 0 else "w",
            encoding=encoding,
            errors=errors,
            newline="\n",
            closefd=False,
        )
        if fd == 2:
            stream.reconfigure(line_buffering=True)  # Python's stderr, since 3.9
        if fd and os.environ.get("PYTHONUNBUFFERED"):  # as this interpreter was started
            stream.reconfigure(write_through=True)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)
    from storage.settings import get_settings

    get_settings.cache_clear()  # read once per process: this process is the client's


def _run() -> int:
    from flows.cli import run_here

    try:
        run_here()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:  # what Python does with one that escapes: die of SIGINT
        _flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        raise
    if code is None:
        code = 0
    if not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    _flush()
    return code


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()


def _learn(folder: Path, before: set[str]) -> None:
    """Note what this child imported for the next runner (best effort, a few ms)."""
    new = sorted(
        name
        for name in set(sys.modules) - before
        if not name.startswith(("__", "flows.cli"))  # the CLI's: imported under the client's env
    )
    if new:
        with suppress(OSError):
            tmp = folder / f".{LEARNED}.{os.getpid()}"
            known = (
                set((folder / LEARNED).read_text().split())
                if (folder / LEARNED).exists()
                else set()
            )
            tmp.write_text("\n".join(sorted(known | set(new))) + "\n")
            os.replace(tmp, folder / LEARNED)
