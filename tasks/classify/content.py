"""What a file's name and first bytes say, without reading it: the part of classification
both backends share (tasks.classify.local reads files, tasks.classify.objects reads objects)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from tasks.classify.categories import category_for_extension, category_for_magic, extension_of
from tasks.classify.dates import date_from_exif, date_from_name, plausible

MAGIC_BYTES = 8 * 1024
EXIF_BYTES = 128 * 1024
_UNIX_EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class Classification:
    category: str
    ext: str
    date: datetime | None  # naive
    date_source: str  # one of DATE_SOURCES
    error: str | None = None
    artist: str | None = None  # audio tags (tasks.classify.tags)
    album: str | None = None
    # blake3 of the first PREFIX_BYTES (tasks.hashes.local), when classify read them from a
    # file that still had the scanned size: the prefix pass need not read it again.
    prefix: bytes | None = None


def storable(text: str) -> str:
    """Text a Parquet string column can hold: the bytes of a name that are not UTF-8 (kept
    by os.fsdecode as surrogate escapes) become U+FFFD."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


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
        date, source = date_without_content(name, mtime_ns)
    return Classification(category or "other", ext, date, source, error)


def wants_head(name: bytes, size: int) -> int:
    """Bytes to read from the head of an object to classify it (0: the name is enough)."""
    return min(size, head_size(category_for_extension(extension_of(name))))


def date_without_content(name: bytes, mtime_ns: int) -> tuple[datetime | None, str]:
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
