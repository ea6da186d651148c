"""One process pool per process, shared by every task that reads file content, and one
thread pool beside it for reads that release the GIL (whole-file hashes).

Per-file reads are short syscalls: threads convoy on the GIL (25-30 µs a file against 8 µs
serial), while processes given chunks of a few thousand paths reach about 2.5 µs a file warm,
and more processes than cores keep a cold disk busy. Reads of a megabyte at a time into
blake3 hold the GIL for none of that time: there threads keep up with processes and nothing
is pickled (tasks.hashes.columns has the figures).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

J = TypeVar("J")
R = TypeVar("R")

_pool: ProcessPoolExecutor | None = None
_pool_size = 0
_thread_pool: ThreadPoolExecutor | None = None
_thread_size = 0
_lock = threading.Lock()


def _get(processes: int) -> ProcessPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != processes:
            if _pool is not None:
                _pool.shutdown(wait=False)
            # forkserver: forking a process that runs Prefect's threads could copy held locks.
            context = multiprocessing.get_context("forkserver")
            preload = ["tasks.hashes.local", "tasks.classify.local", "tasks.scan.local"]
            context.set_forkserver_preload(preload)
            _pool = ProcessPoolExecutor(max_workers=processes, mp_context=context)
            _pool_size = processes
        return _pool


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
