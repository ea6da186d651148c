"""Classify local files: one file's category and best date from its open file descriptor, and
whole shards of files in the process pool (tasks.pool says why processes)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from datetime import datetime
from typing import Any

import blake3

from tasks import pool
from tasks.classify.categories import category_for_extension, extension_of
from tasks.classify.content import (
    EXIF_BYTES,
    MAGIC_BYTES,
    Classification,
    date_without_content,
    head_size,
    inspect_head,
)
from tasks.classify.dates import date_from_exif, date_from_mp4
from tasks.classify.tags import tags_from_fd
from tasks.hashes.local import PREFIX_BYTES

# ISO base media containers whose moov/mvhd carries a creation time.
MP4_EXTENSIONS: frozenset[str] = frozenset({"mp4", "m4v", "mov", "qt", "3gp", "3g2"})
# Box types that can open an ISO base media file; "ftyp" is usual, old QuickTime starts
# straight with moov/mdat or with a padding box.
_MP4_FIRST_BOXES: frozenset[bytes] = frozenset(
    {b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"}
)

# O_NONBLOCK so that a FIFO in the tree cannot hang the worker in open(); it changes nothing
# for regular files.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def classify_file(abs_path: bytes, name: bytes, size: int, mtime_ns: int) -> Classification:
    """Category and date of one file. Never raises; a file that cannot be read gets `error`."""
    ext = extension_of(name)
    category = category_for_extension(ext)
    date: datetime | None = None
    source = "none"
    error: str | None = None

    artist = album = None
    prefix: bytes | None = None

    wants_magic = category is None
    wants_exif = category == "images"
    wants_media = category == "videos" and ext in MP4_EXTENSIONS
    wants_tags = category == "audio"
    if size > 0 and (wants_magic or wants_exif or wants_media or wants_tags):
        try:
            fd = os.open(abs_path, _OPEN_FLAGS)
        except (OSError, ValueError) as exc:
            error = _describe("open", exc)
        else:
            try:
                if wants_tags:
                    artist, album = _tags(fd)
                else:
                    category, date, source, prefix = _inspect(fd, ext, category, size)
            except OSError as exc:
                error = _describe("read", exc)
            finally:
                os.close(fd)

    if date is None:
        date, source = date_without_content(name, mtime_ns)
    return Classification(category or "other", ext, date, source, error, artist, album, prefix)


def _tags(fd: int) -> tuple[str | None, str | None]:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    return tags_from_fd(fd)


def _prefix(head: bytes, size: int, st_size: int) -> bytes | None:
    """The prefix digest (tasks.hashes.local) of a file whose head was read from offset 0,
    when the file is the size the scan saw and the head holds its first PREFIX_BYTES."""
    if st_size != size or len(head) < min(size, PREFIX_BYTES):
        return None
    return blake3.blake3(head[:PREFIX_BYTES]).digest()


def _inspect(
    fd: int, ext: str, category: str | None, size: int
) -> tuple[str | None, datetime | None, str, bytes | None]:
    """Category, content date and prefix digest from an open file of the scanned `size`;
    raises OSError for the caller to report."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    wanted = head_size(category)
    head = os.pread(fd, wanted, 0) if wanted else b""
    prefix = _prefix(head, size, st.st_size) if wanted else None
    category, date = inspect_head(head, category)
    if category == "images" and date is None and wanted == len(head) == MAGIC_BYTES:
        # An image found by its magic bytes: continue the read rather than start over, so no
        # byte of the head is read twice.
        head += os.pread(fd, EXIF_BYTES - len(head), len(head))
        date = date_from_exif(head)
    if date is not None:
        return category, date, "exif", prefix
    if category == "videos" and (ext in MP4_EXTENSIONS or head[4:8] in _MP4_FIRST_BOXES):
        date = date_from_mp4(fd)
        if date is not None:
            return category, date, "media", prefix
    return category, None, "none", prefix


def _describe(operation: str, exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:
            return f"{operation}: symlink not followed"
        return f"{operation}: {exc.strerror or type(exc).__name__}"
    return f"{operation}: {exc}"


CHUNK_FILES = 2000

# (absolute path, name, size, mtime_ns)
Job = tuple[bytes, bytes, int, int]
Row = tuple[str, str, datetime | None, str, str | None, str | None, str | None, bytes | None]


def run_classify(jobs: list[Job]) -> list[Row]:
    out: list[Row] = []
    for path, name, size, mtime_ns in jobs:
        c = classify_file(path, name, size, mtime_ns)
        out.append((c.category, c.ext, c.date, c.date_source, c.error, c.artist, c.album, c.prefix))
    return out


def classify_rows(
    root: str,
    rows: list[dict[str, Any]],
    processes: int,
    on_chunk: Callable[[int, int], None] = lambda files, nbytes: None,
) -> list[Classification]:
    """Classifications of scan rows (path, size, mtime_ns) of one folder, in order, read in
    the process pool."""
    root_b = os.fsencode(root).rstrip(b"/")
    jobs: list[Job] = [
        (root_b + b"/" + r["path"], os.path.basename(r["path"]), r["size"], r["mtime_ns"])
        for r in rows
    ]
    ranges = pool.cut_ranges([0] * len(jobs), CHUNK_FILES)
    results = pool.map_chunks(
        run_classify, ranges, jobs, processes, lambda chunk: on_chunk(len(chunk), 0)
    )
    return [Classification(*result) for result in results]
