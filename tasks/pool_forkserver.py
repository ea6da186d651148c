"""What the stages' forkserver changes in itself before its loop: imported by it alone (the
preload of tasks.pool), so only it and the pool workers it forks have these.

A client that hangs up before sending its descriptors (a stage's thread connected to start a
worker as a Ctrl-C ends the run) made Python 3.11's forkserver die on EOFError, its traceback
on the run's terminal. Python 3.14's forkserver skips such a client (`except (EOFError,
BrokenPipeError, ...): continue`); 3.11's loop skips an OSError with ECONNABORTED, so here a
client that hung up is that error. Nothing else in these processes receives descriptors.

A worker ignores Ctrl-C from its first instruction. The terminal sends SIGINT to the run's whole
process group; a worker's initializer (tasks.pool) ignores it, but a worker forked just then,
before its initializer ran, died of KeyboardInterrupt with a traceback on the run's terminal (a
CI run's). The forkserver ignores SIGINT in its loop and gives each child the disposition it had
before the loop: ignored here, at the preload, so the children start with it ignored.

A worker does not run its parent's main module again. multiprocessing imports it in every
child it starts (as `__mp_main__`, so that functions defined there unpickle), and the parent
is the warm runner (`-m flows.cli.runner`) or the `fileorg` script, which import the CLI
(typer): 30-50 ms of CPU in each worker before its first job, about 11 workers a run of the
146k-file tree (and 2.3-2.6 s each when the main module imports Prefect). A pool job is a
module-level function of tasks.* (tasks.pool.map_each), never of `__main__`.
"""

from __future__ import annotations

import errno
import signal
import socket
from collections.abc import Mapping
from multiprocessing import reduction, spawn
from typing import Any

_recvfds = reduction.recvfds
_prepare = spawn.prepare
_MAIN_KEYS = ("init_main_from_name", "init_main_from_path")


def _recvfds_or_aborted(sock: socket.socket, size: int) -> list[int]:
    try:
        return _recvfds(sock, size)
    except (EOFError, BrokenPipeError):
        raise ConnectionAbortedError(errno.ECONNABORTED, "the client hung up") from None


def _prepare_without_main(data: Mapping[str, Any]) -> None:
    _prepare({key: value for key, value in data.items() if key not in _MAIN_KEYS})


signal.signal(signal.SIGINT, signal.SIG_IGN)
reduction.recvfds = _recvfds_or_aborted
spawn.prepare = _prepare_without_main
