"""Imported by the stages' forkserver alone (tasks.pool's preload), before its loop starts.

A process that connects to the forkserver to start a worker and ends before it has sent its
file descriptors (a stage's thread mid-spawn as a Ctrl-C ends the run) made Python 3.11's
forkserver die on EOFError, its traceback printed on the run's terminal. Python 3.14's
forkserver skips such a client (`except (EOFError, BrokenPipeError, ...): continue`); 3.11's
loop skips only an OSError with ECONNABORTED, so here a client that hung up is that error.
Nothing else in the forkserver or the workers it forks receives descriptors.
"""

from __future__ import annotations

import errno
import socket
from multiprocessing import reduction

_recvfds = reduction.recvfds


def _recvfds_or_aborted(sock: socket.socket, size: int) -> list[int]:
    try:
        return _recvfds(sock, size)
    except (EOFError, BrokenPipeError):
        raise ConnectionAbortedError(errno.ECONNABORTED, "the client hung up") from None


reduction.recvfds = _recvfds_or_aborted
