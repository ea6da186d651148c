"""The plan's reasons in words: which rule put a file where it goes ("images by .jpg, EXIF
2015-05-07"). The machine-readable twin of each reason is its code (storage.manifests)."""

from __future__ import annotations

import functools
import os
from datetime import date as Day
from datetime import datetime

from tasks.classify.categories import category_for_extension

# How each date source is named in a reason (tasks.classify.dates.DATE_SOURCES).
_SOURCES = {
    "exif": "EXIF",
    "media": "media header",
    "filename": "date from file name",
    "mtime": "date from mtime",
}


def shown(path: bytes) -> str:
    """A path in a reason: decoded so that os.fsencode gives the bytes back."""
    return os.fsdecode(path) if path else "the root"


@functools.lru_cache(maxsize=4096)
def kind_of(category: str, ext: str) -> str:
    """How the category was found: by the extension, by the content, or not at all."""
    if ext and category_for_extension(ext) == category:
        return f"{category} by .{ext}"
    if category != "other":
        return f"{category} by content"
    return "other: type not recognised"


def date_of(date: datetime | None, source: str, undated_folder: bool) -> str:
    return _date_of(date.date() if date is not None else None, source, undated_folder)


# Reasons repeat by the day: one string per (day, source), not one per file of a million.
@functools.lru_cache(maxsize=65_536)
def _date_of(date: Day | None, source: str, undated_folder: bool) -> str:
    if date is None:
        return "no date"
    day = date.isoformat()
    if source == "mtime" and undated_folder:
        return f"no date but mtime {day}: undated (--undated folder)"
    named = _SOURCES.get(source)
    return f"{named} {day}" if named else f"dated {day}"


def organized(category: str, ext: str, date: datetime | None, source: str, undated: bool) -> str:
    day = date.date() if date is not None else None
    return _organized(category, ext, day, source, undated)


@functools.lru_cache(maxsize=65_536)
def _organized(category: str, ext: str, day: Day | None, source: str, undated: bool) -> str:
    return f"{kind_of(category, ext)}, {_date_of(day, source, undated)}"


def kept_copy(keep: str, copies: int) -> str:
    return f"; kept copy ({keep}) of {copies}"


def not_linked(owner: str | None, mode: int, kept_owner: str | None, kept_mode: int) -> str | None:
    """Why a copy of another owner or mode than its kept copy's stays (None: it is linked),
    the owner first, as apply checks (tasks.apply.local_links): one inode has one owner, so
    the copy's owner would lose their file to the kept copy's, and one mode, so a private
    0600 copy linked to a 0644 kept copy would become readable by everyone. Owners are
    "uid:gid", None where not scanned (objects): None and None are one owner."""
    if owner != kept_owner:
        return f": not linked: owned by {owner}, the kept copy by {kept_owner} {ONE_OWNER}"
    if mode != kept_mode:
        return f": not linked: mode {mode:04o}, the kept copy's {kept_mode:04o} {ONE_MODE}"
    return None


ONE_OWNER = "(a link has one owner)"
ONE_MODE = "(a link has one mode)"


# A hidden file sorted (--include-hidden) keeps its name, as every file does: still hidden.
HIDDEN_KEPT = "; keeps its name, so it stays hidden (a leading dot)"


def stays_hidden(dst: bytes) -> str:
    """What a reason adds for a file whose destination's name starts with a dot."""
    return HIDDEN_KEPT if dst.rpartition(b"/")[2].startswith(b".") else ""


CASE_ONLY = "(names that differ only in case are one name on a case-insensitive disk)"


def renamed(wanted: bytes, holder: bytes | None = None) -> str:
    """Why a file got "name (n)": its name is taken; by `holder`, the path that has it, when
    that is the same name but for case (tasks.plan.names.key: Photo.JPG has photo.jpg)."""
    if holder is None or holder == wanted:
        return f"; renamed: {shown(wanted)} is taken"
    return f"; renamed: {shown(wanted)} is taken by {shown(holder)} {CASE_ONLY}"


def blocked(dst: bytes, blocker: bytes, left_alone_folder: bool) -> str:
    """Why a file stays: `blocker`, a file (or a folder left alone, which nothing may be put
    into), stands where a folder of its destination `dst` would have to be made."""
    folder = b"/".join(dst.split(b"/")[: blocker.count(b"/") + 1])
    what = "a folder left alone" if left_alone_folder else "a file"
    case = "" if folder == blocker else " (the same name but for case)"
    return (
        f"conflict: {shown(dst)} needs the folder {shown(folder)}/, and {shown(blocker)} is "
        f"{what}{case}: left where it is"
    )


def duplicate_at(twin: bytes, destination: bytes, existed: bool) -> str:
    where = "is already at" if existed else "goes to"
    return f"duplicate of {shown(twin)}, which {where} {shown(destination)}"
