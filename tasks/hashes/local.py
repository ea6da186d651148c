"""Reading file content for hashes: a chunk of a work list in, its digests out, as buffers.

A chunk is the work list's own Arrow buffers (paths as offsets and bytes, sizes as int64), so
neither side builds a Python object per file beyond the path handed to open(2); its result is
32 bytes a file in one buffer, the bytes read, and the few errors by index (tasks.hashes.columns
turns them back into Arrow columns). Prefix chunks run in the process pool, full hashes in
threads (tasks.hashes.columns says why).

Files are opened with O_NOFOLLOW below the root's descriptor and re-checked with fstat, so a
file swapped for a symlink or changed since the scan is an error, not a wrong hash. This
module is imported by the pool's workers: keep its imports light (no pyarrow).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import blake3

PREFIX_BYTES = 4096
DIGEST_BYTES = 32
CHUNK_FILES = 2000
CHUNK_BYTES = 64 * 1024 * 1024
READ_BLOCK = 1024 * 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NOATIME", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FADVISE = hasattr(os, "posix_fadvise")

# (digest or None, error or None, bytes read) of one file
Result = tuple[bytes | None, str | None, int]
# root, full?, path offsets (int64, one more than files), path bytes, sizes (int64)
Chunk = tuple[bytes, bool, bytes | memoryview, bytes | memoryview, bytes | memoryview]
# digests (DIGEST_BYTES a file, zeros for an error), bytes read, errors as (index, message)
Digested = tuple[bytes, int, list[tuple[int, str]]]

CHANGED = "changed since scan"


def _open(path: bytes, dir_fd: int | None) -> int:
    try:
        return os.open(path, _OPEN_FLAGS, dir_fd=dir_fd)
    except PermissionError:
        # O_NOATIME is refused on files we do not own; retry without it.
        return os.open(path, _OPEN_FLAGS & ~getattr(os, "O_NOATIME", 0), dir_fd=dir_fd)


def _checked(
    path: bytes, size: int, digest: Callable[[int, int], Result], dir_fd: int | None = None
) -> Result:
    """`digest` of the open file, if it is still the size the scan saw; else an error."""
    try:
        fd = _open(path, dir_fd)
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
    if size > PREFIX_BYTES and _FADVISE:
        # No readahead past the head: cold, the kernel otherwise reads 3x the bytes asked
        # (800 MB from disk for the bench tree's 260 MB of heads; 550-630 MB with this).
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
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


def digest_chunk(chunk: Chunk) -> Digested:
    """Digest every file of one chunk (paths relative to its root), in order."""
    root, full, offsets, data, sizes = chunk
    starts = memoryview(offsets).cast("B").cast("q")
    wanted = memoryview(sizes).cast("B").cast("q")
    paths = memoryview(data)
    n = len(wanted)
    digests = bytearray(DIGEST_BYTES * n)
    errors: list[tuple[int, str]] = []
    read = _full if full else _prefix
    total = 0
    try:
        root_fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        return bytes(digests), 0, [(i, exc.strerror or type(exc).__name__) for i in range(n)]
    try:
        base = starts[0]
        for i in range(n):
            path = bytes(paths[starts[i] - base : starts[i + 1] - base])
            digest, error, nbytes = _checked(path, wanted[i], read, root_fd)
            total += nbytes
            if digest is None:
                errors.append((i, error or "unreadable"))
            else:
                digests[DIGEST_BYTES * i : DIGEST_BYTES * (i + 1)] = digest
    finally:
        os.close(root_fd)
    return bytes(digests), total, errors
