"""One process pool per process, shared by every task that reads file content, and one
thread pool beside it for reads that release the GIL (whole-file hashes).

Per-file reads are short syscalls: threads convoy on the GIL (25-30 µs a file against 8 µs
serial), while processes given chunks of a few thousand paths reach about 2.5 µs a file warm,
and more processes than cores keep a cold disk busy. Reads of a megabyte at a time into
blake3 hold the GIL for none of that time: there threads keep up with processes and nothing
is pickled (tasks.hashes.columns has the figures).

Ending: every worker holds the pool's queues (both ends) and the write end of the forkserver's
"alive" pipe, so a process that ends without shutting the pool down (os._exit after a Ctrl-C,
a warm runner's child, a signal) left its workers waiting for work forever, the forkserver and
the resource tracker waiting for them, all reparented to init and holding the run's stdout and
stderr (a reader of them never saw EOF). So a process ends them with end() before it exits,
and each worker also ends itself once the process that made the pool is gone (SIGKILL).
"""

from __future__ import annotations

import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from multiprocessing import forkserver, resource_tracker, util
from typing import Any, TypeVar

from storage.processes import pid_alive

J = TypeVar("J")
R = TypeVar("R")

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_owner = 0  # the pid of the process that made _pool
_thread_pool: ThreadPoolExecutor | None = None
_thread_size = 0
_lock = threading.Lock()
_ended = False  # end() ran: this process is exiting, and makes no pool again
# What release() let go that may still work: each pool's workers (as they were, and the
# executor's own dict) and its manager thread, for end() to stop.
_released: list[tuple[dict[int, Any], Any, Any]] = []


def _get(processes: int) -> ProcessPoolExecutor:
    global _pool, _pool_size, _owner
    with _lock:
        if _ended:
            # A stage's thread still running as the process ends (a signal's handler ended the
            # pool): a new pool now would be torn down half-started (tracebacks of its workers).
            raise RuntimeError("the process pool has ended: this process is exiting")
        if _pool is None or _pool_size != processes:
            if _pool is not None:
                _pool.shutdown(wait=False)
            # forkserver: forking a process that runs Prefect's threads could copy held locks.
            context = multiprocessing.get_context("forkserver")
            preload = [
                "tasks.pool_forkserver",
                "tasks.hashes.local",
                "tasks.classify.local",
                "tasks.scan.local",
            ]
            context.set_forkserver_preload(preload)
            _pool = ProcessPoolExecutor(
                max_workers=processes,
                mp_context=context,
                initializer=_worker_started,
                initargs=(os.getpid(),),
            )
            _pool_size, _owner = processes, os.getpid()
        return _pool


def _worker_started(owner: int) -> None:
    """In each worker, first: a Ctrl-C is the owner's to handle (it ends the pool; a worker
    would print a traceback), and the worker exits once `owner` has (however it ended)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_after, args=(owner,), name="fileorg-owner", daemon=True).start()


def _exit_after(owner: int) -> None:
    try:
        watched = os.pidfd_open(owner)  # readable once the process has ended
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # no pidfd here: polled
        while pid_alive(owner):
            time.sleep(1.0)
        os._exit(1)
    select.select([watched], [], [])
    os._exit(1)


def executor(processes: int) -> ProcessPoolExecutor:
    """The pool itself, for work that submits jobs as it finds them (the scan's walk)."""
    return _get(processes)


def cut_ranges(
    weights: Sequence[int], max_items: int, max_weight: int | None = None
) -> list[tuple[int, int]]:
    """Cut a job list into (start, stop) ranges of at most `max_items` jobs, a range ending
    too once its jobs weigh `max_weight` (bytes to read) or more: one huge file does not hold
    up a chunk of small ones, nor make a shard too long to redo."""
    ranges, start, weight = [], 0, 0
    for i, w in enumerate(weights):
        weight += w
        if i + 1 - start >= max_items or (max_weight is not None and weight >= max_weight):
            ranges.append((start, i + 1))
            start, weight = i + 1, 0
    if start < len(weights):
        ranges.append((start, len(weights)))
    return ranges


def _threads(workers: int) -> ThreadPoolExecutor:
    global _thread_pool, _thread_size
    with _lock:
        if _thread_pool is None or _thread_size != workers:
            if _thread_pool is not None:
                _thread_pool.shutdown(wait=False)
            _thread_pool = ThreadPoolExecutor(workers, thread_name_prefix="fileorg-read")
            _thread_size = workers
        return _thread_pool


def shutdown(wait: bool = False) -> None:
    """Stop both pools (`wait`: until their workers have ended); the next use makes new ones."""
    global _pool, _thread_pool
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=wait, cancel_futures=True)
        _pool = None
        if _thread_pool is not None:
            _thread_pool.shutdown(wait=wait, cancel_futures=True)
        _thread_pool = None


def release() -> None:
    """Let the process pool's workers go once the work given to them is done, so that they
    do not hold their memory through stages that read no file content (plan, report: about
    15 MiB a worker). Work already submitted still runs to its end (a flow in another thread
    of this process keeps its results), and the next use makes a new pool."""
    global _pool
    with _lock:
        made, _pool = _pool, None
        if made is None:
            return
        if _owner == os.getpid():
            _released[:] = [r for r in _released if r[1]]  # those whose workers all exited
            processes: Any = made._processes or {}  # the executor's own: shutdown() drops it
            manager: Any = made._executor_manager_thread
            _released.append((dict(processes), processes, manager))
        made.shutdown(wait=False)


def end(timeout: float = 5.0) -> None:
    """Before this process exits, however it exits (os._exit included): terminate the pool's
    workers, then stop the forkserver and the resource tracker it started, each reaped within
    `timeout` (killed after), so that none of them outlives this process. No pool is made
    after it (the stages' threads may still be running)."""
    global _pool, _thread_pool, _ended
    deadline = time.monotonic() + timeout
    locked = _lock.acquire(timeout=timeout)  # a thread that holds it must not hold up the exit
    try:
        _ended = True
        made, _pool = _pool, None
        threads, _thread_pool = _thread_pool, None
        released = list(_released)
        _released.clear()
    finally:
        if locked:
            _lock.release()
    if threads is not None:
        threads.shutdown(wait=False, cancel_futures=True)
    if (made is None and not released) or _owner != os.getpid():
        return
    for before, processes, manager in released:
        _stop_workers(list({**before, **processes}.values()), manager, deadline)
    if made is not None:
        _terminate(made, deadline)
    util._run_finalizers(0)  # type: ignore[attr-defined] # the queues' semaphores, as exit would
    server: Any = forkserver._forkserver
    pid = server._forkserver_pid
    if _stop_child(pid, server._forkserver_alive_fd, deadline):
        address, server._forkserver_address = server._forkserver_address, None
        server._forkserver_pid = server._forkserver_alive_fd = None
        with suppress(OSError, TypeError, ValueError):
            os.unlink(address)
    tracker: Any = resource_tracker._resource_tracker
    if _stop_child(tracker._pid, tracker._fd, deadline):
        tracker._pid = tracker._fd = None


def _terminate(made: ProcessPoolExecutor, deadline: float) -> None:
    processes = made._processes or {}  # the executor's own dict: shutdown() lets go of it
    before = dict(processes)  # the manager thread pops a worker it saw exit
    manager: Any = made._executor_manager_thread  # a Thread (typeshed says otherwise)
    # shutdown() takes the lock submit() spawns workers under (another thread's stage may be
    # starting one now): past it, no worker is half-started and none will be.
    made.shutdown(wait=False, cancel_futures=True)
    _stop_workers(list({**before, **processes}.values()), manager, deadline)


def _stop_workers(workers: list[Any], manager: Any, deadline: float) -> None:
    for worker in workers:
        with suppress(OSError, ValueError):
            worker.terminate()
    for worker in workers:
        with suppress(OSError, ValueError, AssertionError):
            worker.join(max(0.0, deadline - time.monotonic()))
    if manager is not None:  # it closes the queues once it sees the workers gone
        manager.join(max(0.0, deadline - time.monotonic()))


def _stop_child(pid: int | None, alive_fd: int | None, deadline: float) -> bool:
    """Close `alive_fd` (its EOF tells the helper to exit) and reap `pid`, killed once
    `deadline` passed; False if `pid` is not a child of this process (not ours to stop)."""
    if pid is None or alive_fd is None:
        return False
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    with suppress(OSError):
        os.close(alive_fd)
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
        done, _status = os.waitpid(pid, os.WNOHANG)
    if not done:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    return True


def map_chunks(
    fn: Callable[[list[J]], list[R]],
    ranges: Sequence[tuple[int, int]],
    jobs: Sequence[J],
    processes: int,
    on_chunk: Callable[[list[R]], None] = lambda chunk: None,
) -> list[R]:
    """Run `fn` (a module-level function) over each job range, in order, in the pool."""
    chunks = map_each(fn, [list(jobs[a:b]) for a, b in ranges], processes, on_chunk)
    return [result for chunk in chunks for result in chunk]


def map_each(
    fn: Callable[[J], R],
    payloads: Sequence[J],
    workers: int,
    on_result: Callable[[R], None] = lambda result: None,
    threads: bool = False,
) -> list[R]:
    """`fn` (a module-level function) of each payload, in order: in this process when there
    is one worker or one payload, else in the process pool, or in this process's thread pool
    when `threads` (work that releases the GIL, nothing to pickle)."""
    if workers <= 1 or len(payloads) <= 1:
        out: list[R] = []
        for payload in payloads:
            result = fn(payload)
            on_result(result)
            out.append(result)
        return out
    if threads:
        return _in_order([_threads(workers).submit(fn, p) for p in payloads], on_result)
    try:
        return _in_order([_get(workers).submit(fn, p) for p in payloads], on_result)
    except BrokenProcessPool:
        # A worker died (OOM killer, a signal): one fresh pool; task retries cover the rest.
        shutdown()
        return _in_order([_get(workers).submit(fn, p) for p in payloads], on_result)


def _in_order(futures: list[Future[R]], on_result: Callable[[R], None]) -> list[R]:
    out: list[R] = []
    for future in futures:
        result = future.result()
        on_result(result)
        out.append(result)
    return out
