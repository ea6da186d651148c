"""Classify one file: its category and the best date we can find for it."""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks.classify_rules import category_for_extension, category_for_magic, extension_of
from tasks.dates import date_from_exif, date_from_mp4, date_from_name, plausible
from tasks.tags import tags_from_fd

MAGIC_BYTES = 8 * 1024
EXIF_BYTES = 128 * 1024

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
_UNIX_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Classification:
    category: str
    ext: str
    date: datetime | None  # naive
    date_source: str  # one of DATE_SOURCES
    error: str | None = None
    artist: str | None = None  # audio tags (tasks.tags)
    album: str | None = None


def classify_file(abs_path: bytes, name: bytes, size: int, mtime_ns: int) -> Classification:
    """Category and date of one file. Never raises; a file that cannot be read gets `error`."""
    ext = extension_of(name)
    category = category_for_extension(ext)
    date: datetime | None = None
    source = "none"
    error: str | None = None

    artist = album = None

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
                    category, date, source = _inspect(fd, ext, category)
            except OSError as exc:
                error = _describe("read", exc)
            finally:
                os.close(fd)

    if date is None:
        date, source = _date_without_content(name, mtime_ns)
    return Classification(category or "other", ext, date, source, error, artist, album)


def _tags(fd: int) -> tuple[str | None, str | None]:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    return tags_from_fd(fd)


def head_size(category: str | None) -> int:
    """Bytes of the head that content inspection wants first: magic bytes for an unknown
    extension, the EXIF area for an image, nothing otherwise."""
    if category is None:
        return MAGIC_BYTES
    return EXIF_BYTES if category == "images" else 0


def inspect_head(head: bytes, category: str | None) -> tuple[str | None, datetime | None]:
    """Category (by magic bytes when the extension said nothing) and EXIF date from the first
    bytes of a file: the part of content inspection that needs no file descriptor."""
    if category is None:
        category = category_for_magic(head[:MAGIC_BYTES])
    date = date_from_exif(head) if category == "images" and head else None
    return category, date


def _inspect(fd: int, ext: str, category: str | None) -> tuple[str | None, datetime | None, str]:
    """Category and content date from an open file; raises OSError for the caller to report."""
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    wanted = head_size(category)
    head = os.pread(fd, wanted, 0) if wanted else b""
    category, date = inspect_head(head, category)
    if category == "images" and date is None and wanted == len(head) == MAGIC_BYTES:
        # An image found by its magic bytes: continue the read rather than start over, so no
        # byte of the head is read twice.
        head += os.pread(fd, EXIF_BYTES - len(head), len(head))
        date = date_from_exif(head)
    if date is not None:
        return category, date, "exif"
    if category == "videos" and (ext in MP4_EXTENSIONS or head[4:8] in _MP4_FIRST_BOXES):
        date = date_from_mp4(fd)
        if date is not None:
            return category, date, "media"
    return category, None, "none"


def classify_head(
    name: bytes, mtime_ns: int, head: bytes | None, error: str | None = None
) -> Classification:
    """Category and date of an object from its name and the head bytes read for it (None when
    none were read or the read failed with `error`). ISO media dates need the moov box, which
    can be anywhere in the object, so videos are dated by name or last-modified instead."""
    ext = extension_of(name)
    category, date = inspect_head(head or b"", category_for_extension(ext))
    source = "exif" if date is not None else "none"
    if date is None:
        date, source = _date_without_content(name, mtime_ns)
    return Classification(category or "other", ext, date, source, error)


def wants_head(name: bytes, size: int) -> int:
    """Bytes to read from the head of an object to classify it (0: the name is enough)."""
    return min(size, head_size(category_for_extension(extension_of(name))))


def _date_without_content(name: bytes, mtime_ns: int) -> tuple[datetime | None, str]:
    date = date_from_name(os.fsdecode(name))
    if date is not None:
        return date, "filename"
    try:
        mtime = _UNIX_EPOCH + timedelta(microseconds=mtime_ns // 1000)
    except OverflowError:
        return None, "none"
    if plausible(mtime):
        return mtime, "mtime"
    return None, "none"


def _describe(operation: str, exc: OSError | ValueError) -> str:
    if isinstance(exc, OSError):
        if exc.errno == errno.ELOOP:
            return f"{operation}: symlink not followed"
        return f"{operation}: {exc.strerror or type(exc).__name__}"
    return f"{operation}: {exc}"
