"""Categories: which kind of file something is, from its name or, failing that, its first bytes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from storage.extensions import COMPOUND_EXTENSIONS as COMPOUND_EXTENSIONS  # re-exported
from storage.extensions import RULES as RULES
from storage.vocabulary import CATEGORIES as CATEGORIES  # the vocabulary, re-exported
from tasks.classify import magic

MAGIC_SCAN_BYTES = 2048

# The single registry of extension rules lives in storage.extensions (the shared vocabulary:
# what is left alone asks it too); `_index` refuses an extension under two categories, so
# that a new rule cannot silently shadow an old one.

# Magic results shorter than three bytes (confidence < 0.3 in puremagic) match too much
# ordinary text ("BM..." would make any note starting with "BMW" a bitmap).
_MIN_MAGIC_CONFIDENCE = 0.3

_MIME_CATEGORIES: Mapping[str, str] = {
    "application/pdf": "documents",
    "application/rtf": "documents",
    "application/msword": "documents",
    "application/zip": "archives",
    "application/x-matroska": "videos",
    "application/epub+zip": "ebooks",
    "application/vnd.ms-excel": "spreadsheets",
    "application/vnd.ms-powerpoint": "presentations",
}
_MIME_PREFIX_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("image/", "images"),
    ("video/", "videos"),
    ("audio/", "audio"),
    ("font/", "fonts"),
    ("application/font-", "fonts"),
    ("application/x-font-", "fonts"),
)


def _index(rules: Mapping[str, frozenset[str]]) -> dict[str, str]:
    index: dict[str, str] = {}
    for category, extensions in rules.items():
        if category not in CATEGORIES or category == "other":
            raise ValueError(f"rule for unknown category {category!r}")
        for ext in extensions:
            if ext != ext.lower() or ext.startswith("."):
                raise ValueError(f"extension {ext!r} must be lowercase without a dot")
            if ext in index:
                raise ValueError(f"extension {ext!r} is in both {index[ext]} and {category}")
            index[ext] = category
    return index


_EXTENSION_CATEGORIES: dict[str, str] = _index(RULES)


def extension_of(name: bytes) -> str:
    """Lowercase extension without the dot ("" when none); "tar.gz"-style endings kept whole."""
    text = os.fsdecode(name).lower()
    stem, dot, ext = text.rpartition(".")
    # A leading dot marks a hidden file (".bashrc"), not an extension; and text after the
    # last dot that holds whitespace ("Report v2. final") is prose, not an extension.
    if not dot or not stem or not ext or any(ch.isspace() for ch in ext):
        return ""
    inner_stem, inner_dot, inner = stem.rpartition(".")
    if inner_dot and inner_stem and f"{inner}.{ext}" in COMPOUND_EXTENSIONS:
        return f"{inner}.{ext}"
    return ext


# Extensions that name what nobody sorts by kind (compiled code, libraries, caches, logs):
# "other" at once. Sniffing their first bytes costs about 0.5 ms a file in puremagic, and a
# tree of installed software holds them by the hundred thousand.
KNOWN_OTHER: frozenset[str] = frozenset(
    {
        "pyc",
        "pyo",
        "pyd",
        "so",
        "a",
        "o",
        "ko",
        "la",
        "lo",
        "obj",
        "lib",
        "dll",
        "dylib",
        "exe",
        "class",
        "elc",
        "beam",
        "mo",
        "gmo",
        "pc",
        "bin",
        "dat",
        "db",
        "sqlite",
        "sqlite3",
        "log",
        "lock",
        "tmp",
        "temp",
        "bak",
        "cache",
        "pak",
        "idx",
        "pack",
        "pdb",
        "swp",
        "part",
        "crdownload",
        "lnk",
        "ds_store",
        "torrent",
    }
)
_ELF = b"\x7fELF"


def category_for_extension(ext: str) -> str | None:
    ext = ext.lower()
    found = _EXTENSION_CATEGORIES.get(ext)
    if found is None and ext in KNOWN_OTHER:
        return "other"
    return found


@cache
def _category_of_match(extension: str, mime_type: str) -> str | None:
    category = category_for_extension(extension.lstrip("."))
    if category is not None:
        return category
    mime = mime_type.lower()
    if mime in _MIME_CATEGORIES:
        return _MIME_CATEGORIES[mime]
    for prefix, prefixed_category in _MIME_PREFIX_CATEGORIES:
        if mime.startswith(prefix):
            return prefixed_category
    return None


def category_for_magic(head: bytes) -> str | None:
    """Category from a file's first bytes, or None when they are not recognised."""
    if not head:
        return None
    if head.startswith(_ELF):
        return "other"  # programs and libraries, the commonest extension-less files by far
    # The signatures puremagic knows sit in the first bytes; scanning 8 KiB costs it half again
    # as much as 2 KiB for the same answers. tasks.classify.magic finds what
    # puremagic.magic_string would, through an index of its table.
    scored: list[tuple[float, str]] = []
    for confidence, extension, mime_type in magic.matches(head, MAGIC_SCAN_BYTES):
        if confidence < _MIN_MAGIC_CONFIDENCE:
            continue
        category = _category_of_match(extension, mime_type)
        if category is not None:
            scored.append((confidence, category))
    if not scored:
        return None
    best = max(confidence for confidence, _ in scored)
    top = {category for confidence, category in scored if confidence == best}
    if len(top) == 1:
        return top.pop()
    # Container formats tie: a bare ZIP header matches zip, docx, xlsx, odp, jar... equally.
    # Without the file's name all we truly know is that it is an archive of some kind.
    if "archives" in top:
        return "archives"
    for confidence, category in scored:
        if confidence == best:
            return category
    return None  # pragma: no cover - `best` is taken from `scored`
