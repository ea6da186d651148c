"""When a file was made: EXIF, MP4/QuickTime headers, dates in names.

Every function here reads untrusted bytes or names and answers None rather than raising.
All datetimes are naive: EXIF is wall-clock as the camera recorded it, MP4 is UTC.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import struct
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import exifread

DATE_SOURCES = ("exif", "media", "filename", "mtime", "none")

# exifread logs a warning for every image without EXIF and every odd field; across a large
# tree that is noise on stderr, not news. An application that configured this logger itself
# keeps its own level.
_exif_logger = logging.getLogger("exifread")
if _exif_logger.level == logging.NOTSET:
    _exif_logger.setLevel(logging.ERROR)

_EXIF_TAGS = ("EXIF DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime")
# The EXIF form is exactly "YYYY:MM:DD HH:MM:SS"; some writers use dashes or a "T". Every
# field is required so that a value cut short by a truncated read ("2019:04:1") is refused
# rather than read as another day.
_EXIF_DATETIME = re.compile(r"\s*(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")

_MP4_EPOCH = datetime(1904, 1, 1)
_MP4_HEADER = 8
_MP4_LARGE_HEADER = 16
# Crafted files can hold millions of 8-byte boxes; real ones have a handful at top level
# and a few dozen inside moov.
_MP4_MAX_BOXES = 1024
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

_NAME_YEAR_MIN = 1970

# 20190412, 20190412_153000, 20190412-153000123 (Pixel adds milliseconds), 20190412153000.
# The digit lookarounds keep a 12-digit id or a longer run from yielding a date.
_COMPACT = re.compile(
    r"(?<!\d)(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})"
    r"(?:(?P<tsep>[_\-T ]?)(?P<h>\d{2})(?P<mi>\d{2})(?P<s>\d{2})(?:\d{3})?)?"
    r"(?!\d)"
)
# 2019-04-12, 2019_04_12, 2019.04.12, with the same separator both times.
_SEPARATED = re.compile(r"(?<!\d)(?P<y>\d{4})(?P<sep>[-_.])(?P<mo>\d{2})(?P=sep)(?P<d>\d{2})(?!\d)")
# What may follow a separated date: " 15.30.00", "_153000", " at 15.30.00", " at 3.30.00 PM",
# "-15-30-00-123" (Signal).
_TIME_AFTER = re.compile(
    r"(?:\s+at\s+|_at_|[ _T\-])"
    r"(?P<h>\d{1,2})(?P<tsep>[.:_\-h]?)(?P<mi>\d{2})(?:(?P=tsep)(?P<s>\d{2}))?"
    r"(?:[.:_\-]?\d{3})?"
    r"(?:\s?(?P<ampm>[AaPp])\.?[Mm]\.?)?"
    r"(?!\d)"
)


def plausible(dt: datetime) -> bool:
    """A date a real file could carry: after 1970's epoch artefacts, not past next year."""
    return 1971 <= dt.year <= datetime.now(UTC).year + 1


def _make(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime | None:
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def date_from_exif(head: bytes) -> datetime | None:
    """DateTimeOriginal, else DateTimeDigitized, else DateTime, from an image's first bytes."""
    if not head:
        return None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        # exifread assumes a WebP EXIF chunk starts with "Exif\0\0", but the WebP spec (and
        # Pillow, libwebp) store the bare TIFF block; hand exifread that block directly.
        head = _webp_exif_block(head)
        if not head:
            return None
    try:
        tags = exifread.process_file(io.BytesIO(head), details=False, extract_thumbnail=False)
    # exifread walks offsets taken from the file itself; corrupt or truncated data surfaces as
    # any of IndexError, struct.error, UnicodeDecodeError, RecursionError... all mean "no date".
    except Exception:
        return None
    for key in _EXIF_TAGS:
        tag = tags.get(key)
        if tag is None:
            continue
        dt = _parse_exif_datetime(getattr(tag, "values", tag))
        if dt is not None:
            return dt
    return None


def _webp_exif_block(head: bytes) -> bytes:
    pos = 12
    while pos + 8 <= len(head):
        fourcc = head[pos : pos + 4]
        size = int.from_bytes(head[pos + 4 : pos + 8], "little")
        if fourcc == b"EXIF":
            block = head[pos + 8 : pos + 8 + size]
            return block.removeprefix(b"Exif\0\0")
        pos += 8 + size + (size & 1)  # chunks are padded to an even length
    return b""


def _parse_exif_datetime(value: object) -> datetime | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    match = _EXIF_DATETIME.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(group) for group in match.groups())
    dt = _make(year, month, day, hour, minute, second)
    return dt if dt is not None and plausible(dt) else None


def date_from_mp4(fd_or_path: int | bytes | str | os.PathLike[str]) -> datetime | None:
    """creation_time of moov/mvhd in an ISO base media file (MP4, MOV, M4V, 3GP), as UTC.

    Given an open descriptor, reads it with pread and leaves it open; given a path, opens it
    without following symlinks. Only box headers and the mvhd prefix are read.
    """
    if isinstance(fd_or_path, int):
        return _mp4_creation(fd_or_path)
    try:
        fd = os.open(fd_or_path, _OPEN_FLAGS)
    except (OSError, ValueError):
        return None
    try:
        return _mp4_creation(fd)
    finally:
        os.close(fd)


def _mp4_creation(fd: int) -> datetime | None:
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        end = st.st_size
        for box, start, box_end in _boxes(fd, 0, end):
            if box == b"moov":
                for child, child_start, child_end in _boxes(fd, start, box_end):
                    if child == b"mvhd":
                        return _mvhd_creation(fd, child_start, child_end)
                return None
    except OSError:
        return None
    return None


def _boxes(fd: int, pos: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) for each box in [pos, end), stopping at corruption."""
    for _ in range(_MP4_MAX_BOXES):
        if end - pos < _MP4_HEADER:
            return
        header = os.pread(fd, _MP4_LARGE_HEADER, pos)
        if len(header) < _MP4_HEADER:
            return
        size, box = struct.unpack(">I4s", header[:_MP4_HEADER])
        payload = pos + _MP4_HEADER
        if size == 1:
            if len(header) < _MP4_LARGE_HEADER:
                return
            (size,) = struct.unpack(">Q", header[_MP4_HEADER:_MP4_LARGE_HEADER])
            payload = pos + _MP4_LARGE_HEADER
        elif size == 0:
            size = end - pos
        box_end = pos + size
        if box_end < payload or box_end > end:
            return
        yield box, payload, box_end
        pos = box_end


def _mvhd_creation(fd: int, start: int, end: int) -> datetime | None:
    prefix = os.pread(fd, min(12, end - start), start)
    if len(prefix) < 8:
        return None
    version = prefix[0]
    if version == 0:
        (seconds,) = struct.unpack(">I", prefix[4:8])
    elif version == 1 and len(prefix) >= 12:
        (seconds,) = struct.unpack(">Q", prefix[4:12])
    else:
        return None
    if seconds == 0:
        return None
    try:
        dt = _MP4_EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None
    return dt if plausible(dt) else None


def date_from_name(name: str) -> datetime | None:
    """The leftmost valid date written in a file name, with its time when one follows."""
    candidates: list[tuple[int, datetime]] = []
    for match in _COMPACT.finditer(name):
        dt = _from_groups(match.group("y"), match.group("mo"), match.group("d"))
        if dt is None:
            continue
        if match.group("h") is not None:
            timed = _with_time(dt, match.group("h"), match.group("mi"), match.group("s"), None)
            if timed is not None:
                dt = timed
            elif not match.group("tsep"):
                # Fourteen digits that are not date+time are more likely an id than a date.
                continue
            # Otherwise "20190412_999999" is a date followed by a counter: keep the date.
        candidates.append((match.start(), dt))
        break
    for match in _SEPARATED.finditer(name):
        dt = _from_groups(match.group("y"), match.group("mo"), match.group("d"))
        if dt is None:
            continue
        after = _TIME_AFTER.match(name, match.end())
        if after is not None:
            time = (after.group("h"), after.group("mi"), after.group("s"), after.group("ampm"))
            dt = _with_time(dt, *time) or dt
        candidates.append((match.start(), dt))
        break
    if not candidates:
        return None
    return min(candidates, key=lambda candidate: candidate[0])[1]


def _from_groups(year: str, month: str, day: str) -> datetime | None:
    y = int(year)
    if not _NAME_YEAR_MIN <= y <= datetime.now(UTC).year + 1:
        return None
    return _make(y, int(month), int(day))


def _with_time(
    day: datetime, hour: str, minute: str, second: str | None, ampm: str | None
) -> datetime | None:
    h, mi, s = int(hour), int(minute), int(second) if second else 0
    if ampm is not None:
        if not 1 <= h <= 12:
            return None
        h = h % 12 + (12 if ampm in "Pp" else 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    return day.replace(hour=h, minute=mi, second=s)
