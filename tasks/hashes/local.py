"""Reading file content for hashes, in the process pool (tasks.pool says why processes).

Files are opened with O_NOFOLLOW and
re-checked with fstat, so a file swapped for a symlink or changed since the scan is an error,
not a wrong hash. This module is imported by the pool's workers: keep its imports light.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import blake3

from tasks import pool

PREFIX_BYTES = 4096
CHUNK_FILES = 2000
CHUNK_BYTES = 64 * 1024 * 1024
READ_BLOCK = 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)

# (path, expected size) -> (digest or None, error or None, bytes read)
Job = tuple[bytes, int]
Result = tuple[bytes | None, str | None, int]


def _open(path: bytes) -> int:
    try:
        return os.open(path, _OPEN_FLAGS)
    except PermissionError:
        # O_NOATIME is refused on files we do not own; retry without it.
        return os.open(path, _OPEN_FLAGS & ~getattr(os, "O_NOATIME", 0))


CHANGED = "changed since scan"


def _checked(path: bytes, size: int, digest: Callable[[int, int], Result]) -> Result:
    """`digest` of the open file, if it is still the size the scan saw; else an error."""
    try:
        fd = _open(path)
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__, 0
    try:
        if os.fstat(fd).st_size != size:
            return None, CHANGED, 0
        return digest(fd, size)
    except OSError as exc:
        return None, exc.strerror or type(exc).__name__, 0
    finally:
        os.close(fd)


def _prefix(fd: int, size: int) -> Result:
    head = os.pread(fd, PREFIX_BYTES, 0)
    return blake3.blake3(head).digest(), None, len(head)


def _full(fd: int, size: int) -> Result:
    hasher = blake3.blake3()
    buffer = bytearray(min(READ_BLOCK, max(size, 1)))
    view = memoryview(buffer)
    total = 0
    while True:
        n = os.readv(fd, [buffer])
        if n == 0:
            break
        hasher.update(view[:n])
        total += n
    if total != size:
        return None, CHANGED, total
    return hasher.digest(), None, total


def hash_prefix(path: bytes, size: int) -> Result:
    return _checked(path, size, _prefix)


def hash_full(path: bytes, size: int) -> Result:
    return _checked(path, size, _full)


def run_prefix(jobs: list[Job]) -> list[Result]:
    return [hash_prefix(path, size) for path, size in jobs]


def run_full(jobs: list[Job]) -> list[Result]:
    return [hash_full(path, size) for path, size in jobs]


def chunk_ranges(jobs: Sequence[Job], by_bytes: bool) -> list[tuple[int, int]]:
    """Chunks of the job list for the pool, bounded by file count and, for full hashes, by
    bytes (tasks.pool.cut_ranges)."""
    weights = [size for _, size in jobs] if by_bytes else [0] * len(jobs)
    return pool.cut_ranges(weights, CHUNK_FILES, CHUNK_BYTES)


def hash_many(
    kind: str,
    jobs: Sequence[Job],
    processes: int,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> list[Result]:
    """Hash every job ("prefix" or "full") in the process pool; results in job order."""
    full = kind == "full"
    ranges = chunk_ranges(jobs, by_bytes=full)
    if len(jobs) <= 64:
        processes = 1  # a pool round trip costs more than hashing a handful of files
    return pool.map_chunks(
        run_full if full else run_prefix,
        ranges,
        jobs,
        processes,
        lambda chunk: on_chunk(len(chunk), sum(r[2] for r in chunk)),
    )


def hash_rows(
    root: str,
    full: bool,
    rows: list[dict[str, Any]],
    processes: int,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> list[Result]:
    """Digest of each work-list row (path relative to the root, size), in order."""
    root_b = os.fsencode(root).rstrip(b"/")
    jobs = [(root_b + b"/" + r["path"], r["size"]) for r in rows]
    return hash_many("full" if full else "prefix", jobs, processes, on_chunk)
