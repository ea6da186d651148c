from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tasks.classify.categories import (
    CATEGORIES,
    COMPOUND_EXTENSIONS,
    RULES,
    _index,
    category_for_extension,
    category_for_magic,
    extension_of,
)
from tasks.classify.content import EXIF_BYTES, MAGIC_BYTES, Classification
from tasks.classify.dates import (
    DATE_SOURCES,
    date_from_exif,
    date_from_mp4,
    date_from_name,
    plausible,
)
from tasks.classify.local import classify_file
from tasks.hashes.local import PREFIX_BYTES
from tests.trees import mp3_with_tags

SHOT = datetime(2019, 4, 12, 15, 30, 0)
MTIME = datetime(2021, 5, 6, 7, 8, 9, 123_456)
MTIME_NS = (MTIME - datetime(1970, 1, 1)) // timedelta(microseconds=1) * 1000 + 789
MP4_EPOCH = datetime(1904, 1, 1)
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


# --- builders -----------------------------------------------------------------------------


def image_bytes(
    fmt: str = "JPEG",
    original: str | None = None,
    digitized: str | None = None,
    plain: str | None = None,
    size: tuple[int, int] = (16, 16),
) -> bytes:
    """An image from Pillow; the EXIF tags given are written and checked to be readable."""
    exif = Image.Exif()
    if original is not None or digitized is not None:
        # Pillow drops EXIF whose IFD0 is empty when saving PNG/WebP, sub-IFD or not.
        exif[0x010F] = "fileorg-test"  # Make
    if plain is not None:
        exif[0x0132] = plain  # DateTime, in IFD0
    if original is not None or digitized is not None:
        exif_ifd = exif.get_ifd(0x8769)
        if original is not None:
            exif_ifd[36867] = original  # DateTimeOriginal
        if digitized is not None:
            exif_ifd[36868] = digitized  # DateTimeDigitized
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, fmt, exif=exif)
    data = buf.getvalue()
    with Image.open(io.BytesIO(data)) as reread:
        written = reread.getexif()
        if original is not None:
            assert written.get_ifd(0x8769).get(36867) == original
        if plain is not None:
            assert written.get(0x0132) == plain
        if original is None and digitized is None and plain is None:
            assert not written
    return data


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_with_exif_far_in(original: str, padding: int) -> bytes:
    """A PNG whose eXIf chunk sits after a large text chunk, beyond the first 8 KiB."""
    data = image_bytes("PNG", original=original)
    ihdr_end = 8 + 8 + 13 + 4
    filler = png_chunk(b"tEXt", b"Comment\0" + b"x" * padding)
    return data[:ihdr_end] + filler + data[ihdr_end:]


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def large_box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload


def to_end_box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 0, kind) + payload


def mp4_seconds(dt: datetime) -> int:
    return int((dt - MP4_EPOCH).total_seconds())


def mvhd(created: int, version: int = 0) -> bytes:
    if version == 0:
        times = struct.pack(">IIII", created, created, 1000, 5000)
    else:
        times = struct.pack(">QQIQ", created, created, 1000, 5000)
    rest = struct.pack(">IH", 0x00010000, 0x0100) + bytes(10) + bytes(36) + bytes(24)
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + rest + struct.pack(">I", 2))


FTYP = box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2avc1mp41")


def mp4_bytes(created: int, version: int = 0, layout: str = "moov-first") -> bytes:
    moov_payload = box(b"udta", box(b"\xa9too", b"fileorg")) + mvhd(created, version)
    mdat = bytes(4096)
    if layout == "moov-first":
        return FTYP + box(b"moov", moov_payload) + box(b"mdat", mdat)
    if layout == "moov-last-largesize-mdat":
        return FTYP + box(b"free") + large_box(b"mdat", mdat) + box(b"moov", moov_payload)
    if layout == "moov-to-end":
        return FTYP + box(b"mdat", mdat) + to_end_box(b"moov", moov_payload)
    raise AssertionError(layout)


def zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        # a fixed date: the bytes name a parametrized test, the same in every xdist worker
        archive.writestr(zipfile.ZipInfo("notes.txt", date_time=(2020, 1, 1, 0, 0, 0)), "hello")
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> tuple[bytes, bytes, int]:
    path = tmp_path / name
    path.write_bytes(data)
    return os.fsencode(path), os.fsencode(name), len(data)


@pytest.fixture
def memfd() -> Iterator[int]:
    fd = os.memfd_create("classifier-test")
    try:
        yield fd
    finally:
        os.close(fd)


def fill(fd: int, data: bytes) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)


# --- rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_ext"),
    [
        (b"photo.JPG", "jpg"),
        (b"archive.tar.gz", "tar.gz"),
        (b"backup.TAR.BZ2", "tar.bz2"),
        (b"logs.tar.xz", "tar.xz"),
        (b"dump.tar.zst", "tar.zst"),
        (b"data.gz", "gz"),
        (b"not.a.tar.gz.txt", "txt"),
        (b"my.tarball.gz", "gz"),
        (b".bashrc", ""),
        (b".tar.gz", "gz"),
        (b".config.bak", "bak"),
        (b"Makefile", ""),
        (b"trailing.", ""),
        (b"Report v2. final", ""),
        (b"caf\xc3\xa9.PDF", "pdf"),
        (b"raw\xff.NEF", "nef"),
        (b"IMG_0001.HEIC", "heic"),
    ],
)
def test_extension_of(name: bytes, expected_ext: str) -> None:
    assert extension_of(name) == expected_ext


@pytest.mark.parametrize(
    ("ext", "expected_category"),
    [
        ("jpg", "images"),
        ("HEIC", "images"),
        ("cr2", "images"),
        ("nef", "images"),
        ("arw", "images"),
        ("dng", "images"),
        ("mp4", "videos"),
        ("mov", "videos"),
        ("mkv", "videos"),
        ("avi", "videos"),
        ("m4v", "videos"),
        ("3gp", "videos"),
        ("mp3", "audio"),
        ("flac", "audio"),
        ("m4a", "audio"),
        ("pdf", "documents"),
        ("docx", "documents"),
        ("odt", "documents"),
        ("txt", "documents"),
        ("md", "documents"),
        ("rtf", "documents"),
        ("xlsx", "spreadsheets"),
        ("ods", "spreadsheets"),
        ("csv", "spreadsheets"),
        ("pptx", "presentations"),
        ("odp", "presentations"),
        ("key", "presentations"),
        ("zip", "archives"),
        ("7z", "archives"),
        ("rar", "archives"),
        ("tar", "archives"),
        ("tar.gz", "archives"),
        ("tar.zst", "archives"),
        ("py", "code"),
        ("ts", "code"),
        ("rs", "code"),
        ("json", "code"),
        ("html", "code"),
        ("sh", "code"),
        ("ttf", "fonts"),
        ("woff2", "fonts"),
        ("epub", "ebooks"),
        ("azw3", "ebooks"),
        ("fb2", "ebooks"),
        ("", None),
        ("xyz123", None),
        ("tar.foo", None),
    ],
)
def test_category_for_extension(ext: str, expected_category: str | None) -> None:
    assert category_for_extension(ext) == expected_category


def test_rules_cover_every_category_but_other_and_are_consistent() -> None:
    assert set(RULES) == set(CATEGORIES) - {"other"}
    assert RULES["archives"] >= COMPOUND_EXTENSIONS
    assert len(_index(RULES)) == sum(len(exts) for exts in RULES.values())


@pytest.mark.parametrize(
    ("rules", "expected_message"),
    [
        ({"images": frozenset({"x"}), "videos": frozenset({"x"})}, "both"),
        ({"pictures": frozenset({"x"})}, "unknown category"),
        ({"images": frozenset({".jpg"})}, "lowercase"),
        ({"other": frozenset({"x"})}, "unknown category"),
    ],
)
def test_index_refuses_bad_rules(rules: dict[str, frozenset[str]], expected_message: str) -> None:
    with pytest.raises(ValueError, match=expected_message):
        _index(rules)


@pytest.mark.parametrize(
    ("head", "expected_category"),
    [
        (image_bytes("PNG"), "images"),
        (image_bytes("JPEG"), "images"),
        (image_bytes("GIF"), "images"),
        (image_bytes("WEBP"), "images"),
        (PDF_HEAD, "documents"),
        (zip_bytes(), "archives"),
        (zip_bytes()[:30], "archives"),
        (mp4_bytes(0), "videos"),
        (b"fLaC\x00\x00\x00\x22" + bytes(34), "audio"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24), "archives"),
        (b"wOF2\x00\x01\x00\x00" + bytes(40), "fonts"),
        (b"", None),
        (b"just some plain words, nothing magic about them\n", None),
        (b"BMW service notes\n", None),
        (bytes(range(256)), None),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_category_for_magic(head: bytes, expected_category: str | None) -> None:
    assert category_for_magic(head) == expected_category


# --- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected_date"),
    [
        ("IMG_20190412_153000.jpg", SHOT),
        ("VID_20190412_153000.mp4", SHOT),
        ("20190412_153000.jpg", SHOT),
        ("20190412153000.jpg", SHOT),
        ("PXL_20190412_153000123.jpg", SHOT),
        ("PXL_20190412_153000123.NIGHT.jpg", SHOT),
        ("2019-04-12 15.30.00.jpg", SHOT),
        ("2019-04-12T15:30:00.json", SHOT),
        ("Screenshot 2019-04-12 at 15.30.00.png", SHOT),
        ("Screenshot 2019-04-12 at 3.30.00 PM.png", SHOT),
        ("Screenshot 2019-04-12 at 12.05.00 AM.png", datetime(2019, 4, 12, 0, 5)),
        ("WhatsApp Image 2019-04-12 at 15.30.00.jpeg", SHOT),
        ("WhatsApp Video 2019-04-12 at 15.30.00 (1).mp4", SHOT),
        ("signal-2019-04-12-153000.jpg", SHOT),
        ("signal-2019-04-12-15-30-00-123.jpg", SHOT),
        ("2019-04-12.pdf", datetime(2019, 4, 12)),
        ("2019_04_12.txt", datetime(2019, 4, 12)),
        ("scan 2019.04.12.pdf", datetime(2019, 4, 12)),
        ("VID-20190412-WA0001.mp4", datetime(2019, 4, 12)),
        ("IMG_20190412_999999.jpg", datetime(2019, 4, 12)),  # a counter, not a time
        ("2019-04-12 99.99.99.jpg", datetime(2019, 4, 12)),
        ("1970-01-01 epoch.txt", datetime(1970, 1, 1)),
        # the leftmost date wins
        ("IMG_20190412_153000 copy 2020-01-01.jpg", SHOT),
        ("2020-01-01 IMG_20190412_153000.jpg", datetime(2020, 1, 1)),
        # near misses
        ("invoice_123456789012.pdf", None),
        ("order 2019041215.pdf", None),
        ("20190412999999.jpg", None),
        ("IMG_20191332_120000.jpg", None),
        ("report_2019-02-30.pdf", None),
        ("2019-13-01.txt", None),
        ("1850-01-01 daguerreotype.jpg", None),
        ("3019-01-01.txt", None),
        ("2019-04_12.txt", None),
        ("12-04-2019.pdf", None),
        ("v1.2.3.tar.gz", None),
        ("DSC_0042.JPG", None),
        ("", None),
    ],
)
def test_date_from_name(name: str, expected_date: datetime | None) -> None:
    assert date_from_name(name) == expected_date


def test_date_from_name_accepts_next_year_but_not_later() -> None:
    next_year = datetime.now(UTC).year + 1
    assert date_from_name(f"{next_year}-01-01.txt") == datetime(next_year, 1, 1)
    assert date_from_name(f"{next_year + 1}-01-01.txt") is None


@pytest.mark.parametrize(
    ("dt", "expected_plausible"),
    [
        (datetime(1970, 1, 1), False),
        (datetime(1971, 1, 1), True),
        (SHOT, True),
        (datetime(datetime.now(UTC).year + 1, 12, 31), True),
        (datetime(datetime.now(UTC).year + 2, 1, 1), False),
        (datetime(1904, 1, 1), False),
    ],
)
def test_plausible(dt: datetime, expected_plausible: bool) -> None:
    assert plausible(dt) is expected_plausible


@pytest.mark.parametrize(
    ("head", "expected_date"),
    [
        (image_bytes("JPEG", original="2019:04:12 15:30:00"), SHOT),
        (image_bytes("PNG", original="2019:04:12 15:30:00"), SHOT),
        (image_bytes("WEBP", original="2019:04:12 15:30:00"), SHOT),
        (
            image_bytes(
                original="2019:04:12 15:30:00",
                digitized="2018:01:01 00:00:00",
                plain="2017:01:01 00:00:00",
            ),
            SHOT,
        ),
        (image_bytes(digitized="2018:01:01 10:00:00"), datetime(2018, 1, 1, 10)),
        (image_bytes(plain="2017:01:01 09:00:00"), datetime(2017, 1, 1, 9)),
        (
            image_bytes(original="0000:00:00 00:00:00", plain="2017:01:01 09:00:00"),
            datetime(2017, 1, 1, 9),
        ),
        (image_bytes(original="0000:00:00 00:00:00"), None),
        (image_bytes(original="    :  :     :  :  "), None),
        (image_bytes(original="1800:01:01 00:00:00"), None),
        (image_bytes(original="2019:02:30 00:00:00"), None),
        (image_bytes(original="2019-04-12 15:30:00"), SHOT),
        (image_bytes(original="2019:04:12 15:30:00.123+02:00"), SHOT),
        (image_bytes(original="2019:04:12"), None),
        (image_bytes(), None),
        (image_bytes("PNG"), None),
        (image_bytes("WEBP"), None),
        (b"", None),
        (b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00MM\x00*\xff\xff\xff\xff", None),
        (b"II*\x00" + b"\xff" * 64, None),
        (b"RIFF\x10\x00\x00\x00WEBPEXIF\xff\xff\xff\xffMM", None),
        (PDF_HEAD, None),
    ],
)
def test_date_from_exif(head: bytes, expected_date: datetime | None) -> None:
    assert date_from_exif(head) == expected_date


def test_date_from_exif_survives_truncation_at_every_length() -> None:
    data = image_bytes("JPEG", original="2019:04:12 15:30:00")
    results = {date_from_exif(data[:cut]) for cut in range(len(data))}
    assert results <= {None, SHOT}
    assert date_from_exif(data) == SHOT


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("layout", ["moov-first", "moov-last-largesize-mdat", "moov-to-end"])
def test_date_from_mp4_reads_mvhd(tmp_path: Path, version: int, layout: str) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(mp4_bytes(mp4_seconds(SHOT), version, layout))
    assert date_from_mp4(os.fsencode(path)) == SHOT
    assert date_from_mp4(str(path)) == SHOT


def test_date_from_mp4_uses_and_keeps_an_open_descriptor(memfd: int) -> None:
    fill(memfd, mp4_bytes(mp4_seconds(SHOT)))
    assert date_from_mp4(memfd) == SHOT
    os.fstat(memfd)  # still open


@pytest.mark.parametrize(
    ("data", "expected_date"),
    [
        (mp4_bytes(0), None),
        (mp4_bytes(mp4_seconds(datetime(1950, 1, 1))), None),
        (mp4_bytes(2**64 - 1, version=1), None),
        (FTYP + box(b"mdat", bytes(64)), None),
        (mp4_bytes(mp4_seconds(SHOT))[:60], None),
        (FTYP + struct.pack(">I4s", 0xFFFFFFFF, b"moov") + mvhd(mp4_seconds(SHOT)), None),
        (FTYP + struct.pack(">I4s", 4, b"moov") + mvhd(mp4_seconds(SHOT)), None),
        (FTYP + struct.pack(">I4sQ", 1, b"moov", 3) + mvhd(mp4_seconds(SHOT)), None),
        (FTYP + box(b"moov", box(b"mvhd", b"\x00\x00")), None),
        (FTYP + box(b"moov", box(b"mvhd", b"\x07" + bytes(99))), None),
        (box(b"free") * 5000 + box(b"moov", mvhd(mp4_seconds(SHOT))), None),
        (b"", None),
        (PDF_HEAD, None),
    ],
)
def test_date_from_mp4_rejects_corrupt_or_implausible(
    memfd: int, data: bytes, expected_date: datetime | None
) -> None:
    fill(memfd, data)
    assert date_from_mp4(memfd) == expected_date


def test_date_from_mp4_on_paths_it_cannot_use(tmp_path: Path) -> None:
    target = tmp_path / "real.mp4"
    target.write_bytes(mp4_bytes(mp4_seconds(SHOT)))
    link = tmp_path / "link.mp4"
    link.symlink_to(target)
    assert date_from_mp4(os.fsencode(link)) is None
    assert date_from_mp4(os.fsencode(tmp_path / "missing.mp4")) is None
    assert date_from_mp4(os.fsencode(tmp_path)) is None
    assert date_from_mp4(b"nul\x00byte") is None


@given(st.text())
def test_date_from_name_never_raises(name: str) -> None:
    result = date_from_name(name)
    assert result is None or (result.tzinfo is None and result.year >= 1970)


_IMAGE_PREFIXES = [
    b"",
    b"\xff\xd8\xff\xe1",
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
    b"II*\x00",
    b"MM\x00*",
    b"\x89PNG\r\n\x1a\n",
    b"RIFF\x00\x10\x00\x00WEBPVP8X",
    b"\x00\x00\x00\x18ftypheic",
]


@given(st.sampled_from(_IMAGE_PREFIXES), st.binary(max_size=2048))
def test_date_from_exif_never_raises(prefix: bytes, data: bytes) -> None:
    result = date_from_exif(prefix + data)
    assert result is None or plausible(result)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"ftyp", b"moov", b"mvhd", b"mdat", b"free"]),
            st.integers(min_value=0, max_value=2**32 - 1) | st.sampled_from([0, 1, 8, 16]),
            st.binary(max_size=128),
        ),
        max_size=6,
    ),
    st.binary(max_size=512),
)
def test_date_from_mp4_never_raises(
    memfd: int, boxes: list[tuple[bytes, int, bytes]], tail: bytes
) -> None:
    fill(memfd, b"".join(struct.pack(">I4s", size, kind) + body for kind, size, body in boxes))
    os.pwrite(memfd, tail, os.fstat(memfd).st_size)
    result = date_from_mp4(memfd)
    assert result is None or plausible(result)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=1024))
def test_date_from_mp4_never_raises_on_arbitrary_bytes(memfd: int, data: bytes) -> None:
    fill(memfd, data)
    result = date_from_mp4(memfd)
    assert result is None or plausible(result)


@given(st.binary(max_size=4096))
def test_category_for_magic_never_raises(head: bytes) -> None:
    assert category_for_magic(head) in (*CATEGORIES, None)


# --- classify_file ---------------------------------------------------------------------------


def test_classification_is_frozen() -> None:
    result = Classification("images", "jpg", None, "none")
    assert result.error is None
    with pytest.raises(FrozenInstanceError):
        result.category = "videos"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "data", "expected_category", "expected_date", "expected_source"),
    [
        ("holiday.jpg", image_bytes(original="2019:04:12 15:30:00"), "images", SHOT, "exif"),
        ("holiday.webp", image_bytes("WEBP", original="2019:04:12 15:30:00"), "images", SHOT,
         "exif"),
        # EXIF beats the name
        ("IMG_20200101_000000.jpg", image_bytes(original="2019:04:12 15:30:00"), "images", SHOT,
         "exif"),
        ("IMG_20190412_153000.jpg", image_bytes(), "images", SHOT, "filename"),
        ("DSC_0042.jpg", image_bytes(), "images", MTIME, "mtime"),
        ("clip.mp4", mp4_bytes(mp4_seconds(SHOT)), "videos", SHOT, "media"),
        ("clip.MOV", mp4_bytes(mp4_seconds(SHOT), 1, "moov-last-largesize-mdat"), "videos", SHOT,
         "media"),
        ("VID_20190412_153000.mp4", mp4_bytes(0), "videos", SHOT, "filename"),
        ("VID_20190412_153000.mp4", mp4_bytes(mp4_seconds(SHOT))[:50], "videos", SHOT,
         "filename"),
        ("broken.mp4", b"\x00\x00\x00\x08junk" * 3, "videos", MTIME, "mtime"),
        ("film.mkv", b"\x1a\x45\xdf\xa3" + bytes(60), "videos", MTIME, "mtime"),
        # extensionless or unknown extension: magic bytes decide
        ("picture", image_bytes("PNG"), "images", MTIME, "mtime"),
        ("picture", image_bytes("PNG", original="2019:04:12 15:30:00"), "images", SHOT, "exif"),
        ("far-exif", png_with_exif_far_in("2019:04:12 15:30:00", 3 * MAGIC_BYTES), "images",
         SHOT, "exif"),
        ("beyond-exif-window", png_with_exif_far_in("2019:04:12 15:30:00", EXIF_BYTES),
         "images", MTIME, "mtime"),
        ("statement", PDF_HEAD, "documents", MTIME, "mtime"),
        ("bundle", zip_bytes(), "archives", MTIME, "mtime"),
        ("movie", mp4_bytes(mp4_seconds(SHOT)), "videos", SHOT, "media"),
        ("2019-04-12 letter.unknownext", PDF_HEAD, "documents", datetime(2019, 4, 12),
         "filename"),
        ("mystery.xyz", bytes(range(256)) * 4, "other", MTIME, "mtime"),
        ("README", b"plain text, no magic here\n", "other", MTIME, "mtime"),
        ("notes.txt", b"plain text\n", "documents", MTIME, "mtime"),
        ("archive.tar.gz", b"\x1f\x8b\x08\x00" + bytes(60), "archives", MTIME, "mtime"),
    ],
    ids=lambda value: value if isinstance(value, str) else type(value).__name__,
)  # fmt: skip
def test_classify_file(
    tmp_path: Path,
    name: str,
    data: bytes,
    expected_category: str,
    expected_date: datetime,
    expected_source: str,
) -> None:
    path, raw_name, size = write(tmp_path, name, data)
    result = classify_file(path, raw_name, size, MTIME_NS)
    assert replace(result, prefix=None) == Classification(
        expected_category, extension_of(raw_name), expected_date, expected_source
    )
    # What it read from the head gives the prefix pass its digest (test_prefix.py).
    assert result.prefix in (None, blake3.blake3(data[:PREFIX_BYTES]).digest())
    assert result.date_source in DATE_SOURCES
    assert result.date is not None and result.date.tzinfo is None


@pytest.mark.parametrize(
    ("name", "size", "expected_category", "expected_date", "expected_source"),
    [
        # A known extension outside images/videos/audio, or an empty file, is never opened:
        # the path does not exist, yet there is no error.
        ("notes.txt", 100, "documents", MTIME, "mtime"),
        ("report 2019-04-12.pdf", 100, "documents", datetime(2019, 4, 12), "filename"),
        ("empty.mp3", 0, "audio", MTIME, "mtime"),
        ("film.mkv", 100, "videos", MTIME, "mtime"),
        ("empty.jpg", 0, "images", MTIME, "mtime"),
        ("empty", 0, "other", MTIME, "mtime"),
    ],
)
def test_classify_file_does_not_read_when_it_need_not(
    tmp_path: Path,
    name: str,
    size: int,
    expected_category: str,
    expected_date: datetime,
    expected_source: str,
) -> None:
    missing = os.fsencode(tmp_path / "never-created" / name)
    result = classify_file(missing, name.encode(), size, MTIME_NS)
    assert result == Classification(
        expected_category, extension_of(name.encode()), expected_date, expected_source
    )


@pytest.mark.parametrize(
    ("name", "expected_category", "expected_date", "expected_source"),
    [
        ("IMG_20190412_153000.jpg", "images", SHOT, "filename"),
        ("clip.mp4", "videos", MTIME, "mtime"),
        ("no-extension", "other", MTIME, "mtime"),
    ],
)
def test_classify_file_vanished(
    tmp_path: Path,
    name: str,
    expected_category: str,
    expected_date: datetime,
    expected_source: str,
) -> None:
    path, raw_name, size = write(tmp_path, name, b"\x89PNG\r\n\x1a\n" + bytes(64))
    os.unlink(path)
    result = classify_file(path, raw_name, size, MTIME_NS)
    assert (result.category, result.date, result.date_source) == (
        expected_category,
        expected_date,
        expected_source,
    )
    assert result.error == "open: No such file or directory"


def test_classify_file_never_follows_symlinks(tmp_path: Path) -> None:
    target_path, _, size = write(tmp_path, "real.jpg", image_bytes(original="2019:04:12 15:30:00"))
    for link_name in ("link.jpg", "link"):
        link = tmp_path / link_name
        link.symlink_to(Path(os.fsdecode(target_path)))
        result = classify_file(os.fsencode(link), link_name.encode(), size, MTIME_NS)
        assert result.date_source == "mtime"
        assert result.error == "open: symlink not followed"
    assert classify_file(os.fsencode(tmp_path / "link.jpg"), b"link.jpg", size, 0).category == (
        "images"
    )
    assert classify_file(os.fsencode(tmp_path / "link"), b"link", size, 0).category == "other"


def test_classify_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    directory = tmp_path / "IMG_20190412_153000.jpg"
    directory.mkdir()
    result = classify_file(os.fsencode(directory), b"IMG_20190412_153000.jpg", 4096, MTIME_NS)
    assert result == Classification("images", "jpg", SHOT, "filename", "read: not a regular file")

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # Must not block in open() waiting for a writer.
    result = classify_file(os.fsencode(fifo), b"pipe", 1, MTIME_NS)
    assert result == Classification("other", "", MTIME, "mtime", "read: not a regular file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_classify_file_unreadable(tmp_path: Path) -> None:
    path, raw_name, size = write(tmp_path, "secret", b"%PDF-1.4\n")
    os.chmod(path, 0)
    try:
        result = classify_file(path, raw_name, size, MTIME_NS)
    finally:
        os.chmod(path, 0o600)
    assert result == Classification("other", "", MTIME, "mtime", "open: Permission denied")


@pytest.mark.parametrize(
    ("mtime_ns", "expected_date", "expected_source"),
    [
        (MTIME_NS, MTIME, "mtime"),
        (0, None, "none"),
        (-5_000_000_000, None, "none"),
        (int(timedelta(days=365 * 3000).total_seconds()) * 10**9, None, "none"),
        (2**63 - 1, None, "none"),
    ],
)
def test_classify_file_mtime_fallback(
    tmp_path: Path,
    mtime_ns: int,
    expected_date: datetime | None,
    expected_source: str,
) -> None:
    path, raw_name, size = write(tmp_path, "DSC_0042.jpg", image_bytes())
    result = classify_file(path, raw_name, size, mtime_ns)
    assert (result.date, result.date_source, result.error) == (
        expected_date,
        expected_source,
        None,
    )


def test_classify_file_mtime_is_utc_wall_clock(tmp_path: Path) -> None:
    path, raw_name, size = write(tmp_path, "notes.txt", b"x")
    mtime = datetime(2022, 12, 31, 23, 59, 59, 999_999)
    mtime_ns = int(mtime.replace(tzinfo=UTC).timestamp()) * 10**9 + 999_999_999
    assert classify_file(path, raw_name, size, mtime_ns).date == mtime


@pytest.mark.parametrize(
    ("content", "expected_tags"),
    [
        (mp3_with_tags("One", "The Artist", "The Album"), ("The Artist", "The Album")),
        (mp3_with_tags("One", None, None), (None, None)),
        (b"ID3\x04\x00\x00\xff\xff\xff\xff" + b"\x00" * 64, (None, None)),  # a lying header
        (b"not audio at all " * 20, (None, None)),
    ],
)
def test_audio_tags_are_read_and_bad_tags_are_no_tags(
    tmp_path: Path, content: bytes, expected_tags: tuple[str | None, str | None]
) -> None:
    path = tmp_path / "track.mp3"
    path.write_bytes(content)

    result = classify_file(os.fsencode(path), b"track.mp3", len(content), MTIME_NS)

    assert (result.category, result.error) == ("audio", None)
    assert (result.artist, result.album) == expected_tags


def test_the_album_artist_tag_wins_over_the_track_artist(tmp_path: Path) -> None:
    from mutagen.id3 import ID3, TPE2

    path = tmp_path / "track.mp3"
    path.write_bytes(mp3_with_tags("One", "Guest Singer", "Duets"))
    tags = ID3(path)
    tags.add(TPE2(encoding=3, text="The Band"))
    tags.save(path)

    result = classify_file(os.fsencode(path), b"track.mp3", path.stat().st_size, MTIME_NS)

    assert (result.artist, result.album) == ("The Band", "Duets")
