"""A work list's files hashed as Arrow: its columns cut into chunks of buffers for the readers
(tasks.hashes.local), their digests back as columns; no Python object per file on the way.

Where the reads run, measured on the 127k-file prefix and the 13k-file (370 MiB) full work
lists of the 228k-file bench tree, 2 cores, page cache dropped for cold:

* prefix (4 KiB a file): each file is a handful of short syscalls and the GIL is taken back
  after each; 2-4 processes read the list warm in about 0.5 s against 0.9 s for 2 threads
  (more threads are slower: they convoy on the GIL), and cold 8 processes beat 8 threads
  (2.9 s against 3.9 s). So prefix chunks go to the process pool, as the buffers they are.
* full (whole files, 1 MiB reads): blake3 and readv release the GIL for the whole block, so
  threads keep up with processes warm and cold (0.25 s against 0.30 s warm) without pickling
  a chunk or its answers: full chunks run in this process's thread pool.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from tasks import pool
from tasks.hashes import local
from tasks.hashes.local import DIGEST_BYTES, Chunk, Digested, Result

OnChunk = Callable[[int, int], None]
# Up to this many files a pool round trip costs more than reading them here.
IN_PROCESS_FILES = 64


@dataclass(frozen=True)
class Hashed:
    """The digests of a work list, in its order: `digest` null where `error` says why."""

    digest: pa.Array  # binary
    error: pa.Array  # string
    bytes_read: int
    errors: int


def _int64s(array: pa.Array, extra: int = 0) -> memoryview:
    """An int64 array's values (or, with extra=1, a large_binary array's offsets) as a view of
    its buffer: no copy, no Python int per value."""
    view = memoryview(array.buffers()[1]).cast("B").cast("q")
    return view[array.offset : array.offset + len(array) + extra]


def chunk_ranges(sizes: pa.Array | pa.ChunkedArray, by_bytes: bool) -> list[tuple[int, int]]:
    """Chunks of a work list for the readers, bounded by file count and, for full hashes, by
    bytes (tasks.pool.cut_ranges)."""
    if not by_bytes:
        n = len(sizes)
        return [(a, min(a + local.CHUNK_FILES, n)) for a in range(0, n, local.CHUNK_FILES)]
    if isinstance(sizes, pa.ChunkedArray):
        sizes = sizes.combine_chunks()
    weights = _int64s(sizes.cast(pa.int64()))
    return pool.cut_ranges(weights, local.CHUNK_FILES, local.CHUNK_BYTES)


def chunks(
    root: str, full: bool, table: pa.Table, ranges: list[tuple[int, int]], copy: bool
) -> list[Chunk]:
    """The readers' chunks of `table` (path, size): views of its buffers, or bytes when they
    must be pickled (`copy`)."""
    paths = table.column("path").combine_chunks().cast(pa.large_binary())
    sizes = table.column("size").combine_chunks().cast(pa.int64())
    offsets, size_view = _int64s(paths, extra=1), _int64s(sizes)
    data = memoryview(paths.buffers()[2] or b"")
    out: list[Chunk] = []
    for a, b in ranges:
        parts = offsets[a : b + 1], data[offsets[a] : offsets[b]], size_view[a:b]
        if copy:
            parts = bytes(parts[0]), bytes(parts[1]), bytes(parts[2])  # type: ignore[assignment]
        out.append((os.fsencode(root), full, *parts))
    return out


def hash_table(
    root: str, full: bool, table: pa.Table, workers: int, on_chunk: OnChunk = lambda f, b: None
) -> Hashed:
    """Digest of each row (path relative to `root`, size) of a work list, in order: the first
    PREFIX_BYTES in the process pool, or all of it in threads when `full`."""
    if table.num_rows == 0:
        return Hashed(pa.array([], pa.binary()), pa.array([], pa.string()), 0, 0)
    ranges = chunk_ranges(table.column("size"), by_bytes=full)
    in_process = table.num_rows <= IN_PROCESS_FILES
    payloads = chunks(root, full, table, ranges, copy=not (full or in_process))
    done = pool.map_each(
        local.digest_chunk,
        payloads,
        1 if in_process else workers,
        lambda d: on_chunk(len(d[0]) // DIGEST_BYTES, d[1]),
        threads=full,
    )
    return _columns(done, [a for a, _ in ranges], table.num_rows)


def _columns(done: list[Digested], starts: list[int], n: int) -> Hashed:
    errors = [
        (start + i, message)
        for (_, _, found), start in zip(done, starts, strict=True)
        for i, message in found
    ]
    valid = bytearray(b"\xff" * ((n + 7) // 8))
    for i, _ in errors:
        valid[i // 8] &= ~(1 << (i % 8)) & 0xFF
    digests = pa.py_buffer(b"".join(d for d, _, _ in done))
    fixed = pa.Array.from_buffers(
        pa.binary(DIGEST_BYTES), n, [pa.py_buffer(valid), digests], null_count=len(errors)
    )
    return Hashed(fixed.cast(pa.binary()), _sparse(errors, n), sum(d[1] for d in done), len(errors))


def _sparse(errors: list[tuple[int, str]], n: int) -> pa.Array:
    """A string column of n nulls but at the errors' indexes."""
    if not errors:
        return pa.nulls(n, pa.string())
    messages = pa.array([None] + [m for _, m in errors], pa.string())
    picks = bytearray(4 * n)  # index into messages: 0 (null) but where an error is
    view = memoryview(picks).cast("i")
    for k, (i, _) in enumerate(errors):
        view[i] = k + 1
    view.release()
    return pc.take(messages, pa.Array.from_buffers(pa.int32(), n, [None, pa.py_buffer(picks)]))


def from_results(results: list[Result]) -> Hashed:
    """Per-file results (the object reader's) as columns."""
    digests = pa.array([r[0] for r in results], pa.binary())
    errors = pa.array([r[1] for r in results], pa.string())
    return Hashed(
        digests, errors, sum(r[2] for r in results), sum(1 for r in results if r[1] is not None)
    )
